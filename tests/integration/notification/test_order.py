"""A citizen's messages keep the order of their triggers when several arrive in one consumed batch, with
the dispatcher running (batched claims, grouped outcome writes)."""

from __future__ import annotations

import asyncio
import re

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.licensing import ApplicationReturnedV1
from mpp.contracts.events.notification import NotificationChannel
from mpp.kit.consumer import ReceivedEvent
from mpp.notification.api.messaging import dispatcher_handler
from mpp.notification.providers import WhatsAppCloudProvider
from tests.integration.notification.fakes import FakeGateway
from tests.integration.notification.harness import (
    DAYTIME,
    citizen_ref,
    contact_event,
    running_notification,
    wrap,
)

pytestmark = pytest.mark.integration


def returned(ref: str, application: str, n: int) -> Envelope:
    return wrap(
        ApplicationReturnedV1(
            application_id=application,
            service_type="dpmptsp.pbg",
            applicant_ref=ref,
            missing=(f"berkas{n:03d}",),
            note="Berkas perlu dilengkapi.",
            returned_at=DAYTIME,
        ),
        producer="mpp.licensing",
        agency="dpmptsp",
        subject=application,
    )


async def test_one_batch_of_a_citizens_triggers_goes_out_in_order_once_each(
    database_url: str, whatsapp: FakeGateway
) -> None:
    refs = [citizen_ref() for _ in range(4)]
    provider = WhatsAppCloudProvider(base_url=whatsapp.url, phone_number_id="1", token="t", timeout_s=2)
    async with running_notification(
        database_url, providers={NotificationChannel.WHATSAPP: provider}, dispatcher_enabled=True
    ) as api:
        await api.deliver(*(contact_event(r, phone=f"+628120000000{i}") for i, r in enumerate(refs)))
        # Twelve triggers for the first citizen, one for each other, all in one consumed batch.
        batch = [returned(refs[0], "lic-order-0", n) for n in range(12)]
        batch[3:3] = [returned(r, f"lic-order-{i + 1}", 100 + i) for i, r in enumerate(refs[1:])]
        await api.deliver(*batch)
        api.service.dispatcher.kick.set()
        await whatsapp.until(lambda: len(whatsapp.sent) >= 15, timeout_s=60)
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        rows = await api.deliveries()
    first = [
        re.findall(r"berkas\d{3}", r.body["template"]["components"][0]["parameters"][1]["text"])[0]
        for r in whatsapp.sent
        if r.body["to"] == "6281200000000"
    ]
    assert first == [f"berkas{n:03d}" for n in range(12)]
    assert len(whatsapp.sent) == 15 and whatsapp.duplicates == 0
    assert sorted(r["state"] for r in rows) == ["sent"] * 15


async def test_the_dispatcher_is_woken_once_the_consumed_batch_is_committed(database_url: str) -> None:
    woken: list[str] = []
    ref = citizen_ref()
    async with running_notification(database_url) as api:
        handler = dispatcher_handler(api.service.rules, lambda: woken.append("kick"))
        batch = [contact_event(ref), returned(ref, "lic-wake-0", 1)]
        received = [
            ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=i) for i, e in enumerate(batch)
        ]
        async with api.service.runtime.sessions() as session, session.begin():
            await handler(session, received)
            assert woken == []  # not before the records are committed
        assert woken == ["kick"]
        async with api.service.runtime.sessions() as session:
            with pytest.raises(RuntimeError):
                async with session.begin():
                    await handler(
                        session,
                        [
                            ReceivedEvent(
                                envelope=returned(ref, "lic-wake-1", 2), topic="t", partition=0, offset=9
                            )
                        ],
                    )
                    raise RuntimeError("the batch fails")
        assert woken == ["kick"]  # a rolled back batch wakes nobody
