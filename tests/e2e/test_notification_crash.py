"""A burst of 5,000 triggers reaches citizens exactly once per channel, in each citizen's order, while the
notification service (a real process on the real broker and PostgreSQL) is killed with SIGKILL three
times: while it still consumes the burst, and twice while provider calls are in flight.

The providers are real servers in this process: a WhatsApp Cloud API and an SMS gateway that honour
``Idempotency-Key`` as the IETF draft documents it (tests/support/provider_gateway.py) with a latency per
call, and an SMTP server. They count every raw request, every message taken (once per key), replays and
conflicts; the test reads each message's content back to its trigger (the ticket number or the missing
document named in it), so a second message for a trigger under another key would be seen too.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel
from mpp.contracts.events.licensing import ApplicationReturnedV1
from mpp.contracts.events.notification import CitizenContactRegisteredV1, NotificationChannel
from mpp.contracts.events.queue import TicketCalledV1, VisitStartedV1
from mpp.contracts.kafka import to_record
from mpp.contracts.topics import consumer_group
from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer, ensure_topics, topic_partitions
from mpp.notification.app import DEFAULT_TRIGGERS
from mpp.notification.persistence.tables import contacts, deliveries
from tests.integration.notification.fakes import smtp_server
from tests.support.kafka_tools import wait_for
from tests.support.processes import ROOT, ServiceProcess
from tests.support.provider_gateway import IdempotentGateway, serving

pytestmark = pytest.mark.e2e

TRIGGERS = 5000
CITIZENS = 2000
BUSY = 300
"""Citizens with several messages: each gets (TRIGGERS - CITIZENS) // BUSY more than one."""
SITE = "mpp-kota-sukamaju"
MARKER = re.compile(r"T-\d{4}|berkas\d{5}")
REFUSED_PREFIX = "+62813"
"""Numbers the WhatsApp server refuses (not on WhatsApp): their messages fall back to SMS."""


def latency(rng: random.Random) -> float:
    """Mostly 20-120 ms; one call in 150 takes 1.5 s (a slow provider moment)."""
    return 1.5 if rng.random() < 1 / 150 else rng.uniform(0.02, 0.12)


@dataclass
class Citizen:
    ref: str
    kind: str  # whatsapp | refused (WhatsApp refuses: SMS) | sms | email
    stream: str  # visit | application
    key: str  # the visit or application every trigger of this citizen names
    markers: list[str] = field(default_factory=list)

    @property
    def channel(self) -> str:
        return {"whatsapp": "whatsapp", "refused": "sms", "sms": "sms", "email": "email"}[self.kind]


def wrap(payload: Any, *, producer: str, agency: str, subject: str) -> Envelope:
    return Envelope.wrap(payload, producer=producer, agency=agency, site=SITE, subject=subject)


def population(rng: random.Random) -> tuple[list[Citizen], list[tuple[Citizen, Envelope]]]:
    """The citizens, and the burst: each citizen's triggers name one visit or one application, so they
    share a record key and reach the service in the order published."""
    citizens = []
    for i in range(CITIZENS):
        kind = "email" if i % 33 == 5 else "refused" if i % 20 == 3 else "sms" if i % 8 == 1 else "whatsapp"
        stream = "application" if kind == "email" or i % 2 else "visit"
        key = f"{'vis' if stream == 'visit' else 'lic'}-{secrets.token_hex(6)}"
        citizens.append(Citizen(f"c_{secrets.token_hex(12)}", kind, stream, key))
    counts = [1] * CITIZENS
    extra = (TRIGGERS - CITIZENS) // BUSY
    for i in rng.sample(range(CITIZENS), BUSY):
        counts[i] += extra
    counts[0] += TRIGGERS - sum(counts)
    order = [i for i, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(order)  # one citizen's triggers are spread over the burst, still in their own order
    burst = []
    for n, i in enumerate(order):
        citizen = citizens[i]
        if citizen.stream == "visit":
            marker = f"T-{n:04d}"
            env = wrap(
                TicketCalledV1(
                    visit_id=citizen.key,
                    ticket_id=f"tkt-{secrets.token_hex(6)}",
                    ticket_number=marker,
                    service_type="disdukcapil.ktp-el-rekam",
                    agency="disdukcapil",
                    counter="loket-02",
                    officer_ref="usr-dukcapil-017",
                    called_at=datetime.now(UTC),
                    waiting_seconds=300,
                ),
                producer="mpp.queue",
                agency="disdukcapil",
                subject=citizen.key,
            )
        else:
            marker = f"berkas{n:05d}"
            env = wrap(
                ApplicationReturnedV1(
                    application_id=citizen.key,
                    service_type="dpmptsp.pbg",
                    applicant_ref=citizen.ref,
                    missing=(marker,),
                    note="Berkas perlu dilengkapi.",
                    returned_at=datetime.now(UTC),
                ),
                producer="mpp.licensing",
                agency="dpmptsp",
                subject=citizen.key,
            )
        citizen.markers.append(marker)
        burst.append((citizen, env))
    return citizens, burst


def contact(citizen: Citizen, n: int) -> Envelope:
    phone = (
        None
        if citizen.kind == "email"
        else f"{REFUSED_PREFIX if citizen.kind == 'refused' else '+62812'}{n:08d}"
    )
    return wrap(
        CitizenContactRegisteredV1(
            citizen_ref=citizen.ref,
            phone=phone,
            email=f"warga{n}@mail.example" if citizen.kind == "email" else None,
            whatsapp=citizen.kind in ("whatsapp", "refused"),
            preferred_channel=NotificationChannel(
                citizen.channel if citizen.kind != "refused" else "whatsapp"
            ),
            optional_messages_consent=True,
            consent_recorded_at=datetime.now(UTC),
            source_agency="disdukcapil",
            registered_at=datetime.now(UTC),
        ),
        producer="mpp.identity",
        agency="disdukcapil",
        subject=citizen.ref,
    )


def visit_started(citizen: Citizen) -> Envelope:
    return wrap(
        VisitStartedV1(
            visit_id=citizen.key,
            channel=Channel.WALK_IN,
            citizen_ref=citizen.ref,
            started_at=datetime.now(UTC),
        ),
        producer="mpp.queue",
        agency="mpp",
        subject=citizen.key,
    )


async def skip_backlog(bootstrap: str, group: str) -> None:
    """The service's group starts at the shared topics' current ends (other runs' events stay unread)."""
    topics = consumer_group("mpp.notification.dispatcher").topics
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [tp for t in topics for tp in await topic_partitions(bootstrap, t)]
        consumer.assign(tps)
        await consumer.commit(dict(await consumer.end_offsets(tps)))
    finally:
        await consumer.stop()


def trigger_file(tmp: Path) -> Path:
    """The packaged triggers without quiet hours, so the test runs the same at any hour."""
    config = json.loads(DEFAULT_TRIGGERS.read_text(encoding="utf-8"))
    config["quiet_hours"] = {"default": None, "sites": {}}
    path = tmp / "triggers.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


async def test_a_burst_survives_three_kills_with_exactly_one_message_per_trigger_in_order(
    kafka_bootstrap: str, database: str, tmp_path: Path
) -> None:
    rng = random.Random(20260302)
    citizens, burst = population(rng)
    whatsapp = IdempotentGateway(
        "whatsapp", latency=latency, refuses=lambda to: to.startswith(REFUSED_PREFIX.removeprefix("+"))
    )
    sms = IdempotentGateway("sms", latency=latency, seed=11)
    group = f"mpp.notification.dispatcher.e2e-{secrets.token_hex(4)}"
    await ensure_topics(kafka_bootstrap)
    await skip_backlog(kafka_bootstrap, group)
    logs = ROOT / "artifacts" / "e2e-logs"
    logs.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database)
    producer = create_producer(kafka_bootstrap, client_id="notification-crash-test")
    with smtp_server() as (mailbox, smtp_port):
        async with serving(whatsapp), serving(sms):
            service = ServiceProcess(
                "notification",
                {
                    "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                    "MPP_JWT_HS256_SECRET": "e2e-" + secrets.token_hex(16),
                    "MPP_NOTIFICATION_DATABASE_URL": database,
                    "MPP_NOTIFICATION_DISPATCHER_GROUP": group,
                    "MPP_NOTIFICATION_TRIGGER_FILE": str(trigger_file(tmp_path)),
                    "MPP_NOTIFICATION_WHATSAPP_PROVIDER": "cloud",
                    "MPP_NOTIFICATION_WHATSAPP_BASE_URL": whatsapp.url,
                    "MPP_NOTIFICATION_WHATSAPP_PHONE_NUMBER_ID": "1098765432",
                    "MPP_NOTIFICATION_WHATSAPP_TOKEN": "e2e-token",
                    "MPP_NOTIFICATION_WHATSAPP_RATE_PER_S": "5000",
                    "MPP_NOTIFICATION_WHATSAPP_BURST": "500",
                    "MPP_NOTIFICATION_SMS_PROVIDER": "http",
                    "MPP_NOTIFICATION_SMS_URL": f"{sms.url}/v1/sms",
                    "MPP_NOTIFICATION_SMS_TOKEN": "e2e-token",
                    "MPP_NOTIFICATION_SMS_RATE_PER_S": "5000",
                    "MPP_NOTIFICATION_SMS_BURST": "500",
                    "MPP_NOTIFICATION_EMAIL_PROVIDER": "smtp",
                    "MPP_NOTIFICATION_SMTP_HOST": "127.0.0.1",
                    "MPP_NOTIFICATION_SMTP_PORT": str(smtp_port),
                    "MPP_NOTIFICATION_SMTP_TLS": "none",
                    "MPP_NOTIFICATION_EMAIL_RATE_PER_S": "5000",
                    "MPP_NOTIFICATION_EMAIL_BURST": "500",
                    "MPP_NOTIFICATION_BACKOFF_BASE_S": "0.2",
                    "MPP_NOTIFICATION_BACKOFF_MAX_S": "1.0",
                    "MPP_NOTIFICATION_PROVIDER_TIMEOUT_S": "5",
                    "MPP_NOTIFICATION_MAX_ATTEMPTS": "20",
                },
                logs,
            )
            await producer.start()
            try:
                service.start()
                await service.wait_ready()
                await _run(service, engine, producer, citizens, burst, whatsapp, sms, mailbox)
            finally:
                await producer.stop()
                if service.proc is not None and service.proc.poll() is None:
                    service.proc.kill()
                    service.proc.wait()
                await engine.dispose()


async def _publish(producer: Any, envelopes: list[Envelope]) -> None:
    sent = []
    for env in envelopes:
        key, value, headers = to_record(env)
        sent.append(await producer.send(env.topic, key=key, value=value, headers=headers))
    await asyncio.gather(*sent)


def _kill(service: ServiceProcess) -> None:
    """SIGKILL now, from inside this event loop: nothing the servers hold changes before the signal."""
    assert service.proc is not None
    os.kill(service.proc.pid, signal.SIGKILL)


async def _run(
    service: ServiceProcess,
    engine: Any,
    producer: Any,
    citizens: list[Citizen],
    burst: list[tuple[Citizen, Envelope]],
    whatsapp: IdempotentGateway,
    sms: IdempotentGateway,
    mailbox: Any,
) -> None:
    await _publish(producer, [contact(c, n) for n, c in enumerate(citizens)])
    await _publish(producer, [visit_started(c) for c in citizens if c.stream == "visit"])

    async def contacts_known() -> bool:
        async with engine.connect() as conn:
            return (
                int((await conn.execute(select(func.count()).select_from(contacts))).scalar_one()) == CITIZENS
            )

    await wait_for(contacts_known, timeout_s=60, what="the contacts")

    def taken() -> int:
        return whatsapp.taken_keys + sms.taken_keys + len(mailbox.messages)

    async def records() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(deliveries))).scalar_one())

    async def publish_burst() -> None:
        for start in range(0, TRIGGERS, 250):
            await _publish(producer, [env for _c, env in burst[start : start + 250]])
            await asyncio.sleep(0.2)

    began = time.monotonic()
    publishing = asyncio.create_task(publish_burst())
    kills: list[str] = []
    # 1. While the burst is still being consumed (records written), with messages going out.
    await wait_for(lambda: _true(taken() >= 100), timeout_s=90, interval_s=0.01, what="the first messages")
    still_consuming = await records() < TRIGGERS  # fallback records count too: a hint only
    _kill(service)
    kills.append(f"consuming={still_consuming} taken={taken()} at={time.monotonic() - began:.1f}s")
    print(kills[-1], flush=True)
    service.proc.wait(timeout=30)  # type: ignore[union-attr]
    service.start()
    # 2. and 3. Mid-send: WhatsApp holds calls in flight that the service has no answer to.
    for share in (0.4, 0.75):
        await wait_for(
            lambda share=share: _true(taken() >= TRIGGERS * share and whatsapp.in_flight > 0),  # type: ignore[misc]
            timeout_s=120,
            interval_s=0.005,
            what=f"{share:.0%} of the messages with calls in flight",
        )
        in_flight = whatsapp.in_flight
        _kill(service)
        kills.append(f"in_flight={in_flight} taken={taken()} at={time.monotonic() - began:.1f}s")
        print(kills[-1], flush=True)
        service.proc.wait(timeout=30)  # type: ignore[union-attr]
        service.start()
    await publishing
    await service.wait_ready()

    # Other runs on the shared broker may publish triggers too (for citizens without a contact here).
    ours = [str(env.id) for _c, env in burst]

    async def settled() -> bool:
        async with engine.connect() as conn:
            open_ = (
                await conn.execute(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.state.in_(["pending", "sending"]))
                )
            ).scalar_one()
            triggers = (
                await conn.execute(
                    select(func.count(deliveries.c.trigger_event_id.distinct())).where(
                        deliveries.c.trigger_event_id.in_(ours)
                    )
                )
            ).scalar_one()
        return int(triggers) == TRIGGERS and int(open_) == 0

    await wait_for(settled, timeout_s=150, interval_s=0.5, what="every delivery to be finished")
    kills.append(f"settled at={time.monotonic() - began:.1f}s")
    await asyncio.sleep(1.0)  # a duplicate still on its way would arrive now

    # What each server took, read back to triggers by content.
    by_channel: dict[str, list[str]] = {"whatsapp": [], "sms": [], "email": []}
    # Only messages to this test's citizens: other runs on the shared broker may have theirs sent too.
    addresses = {
        address
        for n, c in enumerate(citizens)
        for address in (
            str(contact(c, n).payload.phone or "").removeprefix("+"),  # type: ignore[attr-defined]
            str(contact(c, n).payload.email or ""),  # type: ignore[attr-defined]
        )
        if address
    }
    for channel, gateway in (("whatsapp", whatsapp), ("sms", sms)):
        for message in sorted(gateway.taken, key=lambda t: t.seq):
            if message.recipient.removeprefix("+") not in addresses:
                continue
            found = MARKER.findall(message.text)
            assert len(found) == 1, f"{channel} message without one trigger marker: {message.text!r}"
            by_channel[channel].append(found[0])
    for mail in mailbox.messages:
        if str(mail["To"]) not in addresses:
            continue
        payload = mail.get_payload(decode=True)
        text = payload.decode() if isinstance(payload, bytes) else str(mail.get_payload())
        found = MARKER.findall(text)
        assert len(found) == 1, "email without one trigger marker"
        by_channel["email"].append(found[0])

    async with engine.connect() as conn:
        rows = (await conn.execute(select(deliveries))).mappings().all()
    unknown_email = {
        str(r["context"].get("missing", [""])[0]).replace(" ", "")
        for r in rows
        if r["channel"] == "email" and r["provider_error_code"] == "outcome_unknown"
    }
    counts = {channel: Counter(markers) for channel, markers in by_channel.items()}
    problems: list[str] = []
    for citizen in citizens:
        for marker in citizen.markers:
            for channel, counted in counts.items():
                n = counted[marker]
                if channel != citizen.channel:
                    if n:
                        problems.append(f"{marker}: {n} on {channel}, expected none there")
                elif channel == "email" and marker in unknown_email:
                    if n > 1:
                        problems.append(f"{marker}: {n} emails")
                elif n != 1:
                    problems.append(f"{marker}: {n} on {channel}, expected exactly one")
        # The citizen's messages arrived in the order of their triggers.
        sent = [m for m in by_channel[citizen.channel] if m in set(citizen.markers)]
        if sent != [m for m in citizen.markers if m in set(sent)]:
            problems.append(f"{citizen.ref}: out of order {sent[:6]}... vs {citizen.markers[:6]}...")
    assert not problems, f"{len(problems)} problems, e.g. {problems[:10]}"

    refused_triggers = sum(len(c.markers) for c in citizens if c.kind == "refused")
    assert whatsapp.refused == refused_triggers  # each refused once; its fallback went out by SMS
    assert whatsapp.mismatches == sms.mismatches == 0
    # Each mid-send kill left calls without an answer; the restarted service asked again with the same key.
    assert whatsapp.replays + sms.replays >= 2
    assert service.starts == 4
    states = Counter((r["channel"], r["state"]) for r in rows)
    print(
        f"\nkills: {kills}\nrecords: {dict(states)}\n"
        f"whatsapp: {whatsapp.requests} requests, {whatsapp.taken_keys} messages, {whatsapp.refused} refused, "
        f"{whatsapp.replays} replays, {whatsapp.conflicts} conflicts (409)\n"
        f"sms: {sms.requests} requests, {sms.taken_keys} messages, {sms.replays} replays, {sms.conflicts} conflicts\n"
        f"email: {len(mailbox.messages)} messages, {len(unknown_email)} with outcome unknown after a kill"
    )
    assert service.terminate() is not None


async def _true(value: bool) -> bool:
    return value
