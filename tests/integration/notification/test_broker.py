"""End to end through the real broker: events published by the queue and licensing reach the citizen's
WhatsApp (a loopback Cloud API server) exactly once, and NotificationSent appears on the deliveries topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.notification import NotificationChannel
from mpp.contracts.kafka import to_record
from mpp.contracts.topics import NOTIFICATION_DELIVERIES, consumer_group
from mpp.kit.kafka import create_producer, ensure_topics, topic_partitions
from mpp.notification.providers import WhatsAppCloudProvider
from tests.integration.notification.fakes import FakeGateway
from tests.integration.notification.harness import (
    application_returned,
    citizen_ref,
    contact_event,
    running_notification,
    ticket_called,
    visit_started,
)

WAIT_S = 90.0

pytestmark = pytest.mark.integration


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _skip_backlog(bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
    """Start the test's own group at the shared topics' current ends."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [tp for t in topics for tp in await topic_partitions(bootstrap, t)]
        consumer.assign(tps)
        await consumer.commit(dict(await consumer.end_offsets(tps)))
    finally:
        await consumer.stop()


async def _publish(producer: AIOKafkaProducer, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        key, value, headers = to_record(envelope)
        await (await producer.send(envelope.topic, key=key, value=value, headers=headers))


async def test_triggers_from_the_broker_reach_the_provider_exactly_once(
    kafka_bootstrap: str, database_url: str, whatsapp: FakeGateway
) -> None:
    group = f"test.notification.{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap)
    await _skip_backlog(kafka_bootstrap, group, consumer_group("mpp.notification.dispatcher").topics)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    tps = await topic_partitions(kafka_bootstrap, NOTIFICATION_DELIVERIES)
    reader.assign(tps)
    await reader.seek_to_end(*tps)
    for tp in tps:
        await reader.position(tp)
    producer = create_producer(kafka_bootstrap, client_id="notification-test")
    await producer.start()
    provider = WhatsAppCloudProvider(
        base_url=whatsapp.url, phone_number_id="1098765432", token="t", timeout_s=2
    )
    ref, visit = citizen_ref(), f"vis-{uuid.uuid4().hex[:10]}"
    sent: list[dict[str, Any]] = []
    try:
        async with running_notification(
            database_url,
            providers={NotificationChannel.WHATSAPP: provider},
            kafka_bootstrap_servers=kafka_bootstrap,
            consumer_enabled=True,
            relay_enabled=True,
            dispatcher_enabled=True,
            dispatcher_group=group,
        ) as api:
            await _publish(producer, contact_event(ref))

            async def contact_known() -> bool:
                return await api.service.contact(ref) is not None

            await _eventually(contact_known, "the contact")
            called, returned = ticket_called(visit, number="C-021"), application_returned(ref)
            recall = ticket_called(visit, number="C-022")
            await _publish(producer, visit_started(ref, visit), called, returned)
            await _publish(producer, called, recall)  # the first call again (a redelivery), then a new call

            wanted = {str(called.id), str(returned.id), str(recall.id)}

            async def all_sent() -> bool:
                for records in (await reader.getmany(timeout_ms=200)).values():
                    for record in records:
                        headers = dict(record.headers or [])
                        payload = json.loads(record.value)
                        if (
                            headers.get("ce_type") == b"NotificationSent"
                            and payload["trigger_event_id"] in wanted
                        ):
                            sent.append(payload)
                return len(sent) >= 3

            await _eventually(all_sent, "NotificationSent for the three triggers on the deliveries topic")
            rows = await api.deliveries()
    finally:
        await producer.stop()
        await reader.stop()
    numbers = sorted(
        r.body["template"]["components"][0]["parameters"][0]["text"]
        for r in whatsapp.received
        if r.body["template"]["name"] == "mpp_ticket_called"
    )
    assert numbers == ["C-021", "C-022"], "each call reached the citizen exactly once"
    assert len(whatsapp.received) == 3 and whatsapp.duplicates == 0
    assert sorted(p["trigger_event_id"] for p in sent) == sorted(wanted)
    assert {p["channel"] for p in sent} == {"whatsapp"}
    assert len(rows) == 3 and {r["state"] for r in rows} == {"sent"}
