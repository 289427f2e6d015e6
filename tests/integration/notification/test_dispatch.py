"""Deliveries through real loopback HTTP providers: retries, circuit breaking, fallback, consent, quiet
hours, invalid numbers, per-recipient order and exactly one message per trigger and channel."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest

from mpp.contracts.events.notification import NotificationChannel
from mpp.notification.ports import Provider
from mpp.notification.providers import HttpSmsProvider, WhatsAppCloudProvider
from tests.integration.notification.fakes import FakeGateway
from tests.integration.notification.harness import (
    application_returned,
    application_submitted,
    citizen_ref,
    contact_event,
    running_notification,
    ticket_called,
    ticket_issued,
    visit_started,
)

W, S, E = NotificationChannel.WHATSAPP, NotificationChannel.SMS, NotificationChannel.EMAIL

pytestmark = pytest.mark.integration


def http_providers(
    whatsapp: FakeGateway, sms: FakeGateway, timeout_s: float = 2.0
) -> dict[NotificationChannel, Provider]:
    return {
        W: WhatsAppCloudProvider(
            base_url=whatsapp.url, phone_number_id="1098765432", token="wa-token", timeout_s=timeout_s
        ),
        S: HttpSmsProvider(
            url=f"{sms.url}/v1/messages", token="sms-token", sender="MPPSKM", timeout_s=timeout_s
        ),
    }


async def test_ticket_called_goes_out_once_on_whatsapp_in_the_cloud_api_shape(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref, visit = citizen_ref(), f"vis-{uuid.uuid4().hex[:10]}"
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        called = ticket_called(visit, number="B-007")
        await api.deliver(contact_event(ref), visit_started(ref, visit), called)
        await api.deliver(called)  # the same trigger consumed again (a redelivery)
        await api.settle()
        [row] = await api.deliveries(called)
        sent = await api.published("NotificationSent")
    assert row["state"] == "sent" and row["channel"] == "whatsapp" and row["attempts"] == 1
    [request] = whatsapp.received
    assert request.path == "/1098765432/messages"
    assert request.headers["authorization"] == "Bearer wa-token"
    assert request.headers["idempotency-key"] == row["id"]
    assert request.body["messaging_product"] == "whatsapp"
    assert request.body["to"] == "6281234567890"
    assert request.body["type"] == "template"
    template = request.body["template"]
    assert template["name"] == "mpp_ticket_called" and template["language"] == {"code": "id"}
    assert [p["text"] for p in template["components"][0]["parameters"]] == ["B-007", "Loket 2"]
    assert sms.received == []
    [event] = sent
    assert event.payload["notification_id"] == row["id"]
    assert event.payload["trigger_event_id"] == str(called.id)
    assert event.payload["trigger_event_type"] == "TicketCalled"
    assert event.payload["provider_message_id"] == "whatsapp-1"
    assert event.payload["citizen_ref"] == ref
    assert "6281234567890" not in str(event.payload)


async def test_transient_errors_are_retried_with_the_same_idempotency_key(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref = citizen_ref()
    whatsapp.answer("500", "429", "timeout", "ok")
    whatsapp.hang_s = 3.0
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.settle()
        [row] = await api.deliveries(returned)
        assert len(await api.published("NotificationSent")) == 1
        assert await api.published("NotificationFailed") == []
    assert row["state"] == "sent" and row["attempts"] == 4
    assert [r.answered for r in whatsapp.received] == ["500", "429", "timeout", "ok"]
    assert {r.headers["idempotency-key"] for r in whatsapp.received} == {row["id"]}
    assert sms.received == []


async def test_a_permanent_error_moves_the_message_to_the_next_channel(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref = citizen_ref()
    whatsapp.answer("400")
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.settle()
        rows = await api.deliveries(returned)
        failed = await api.published("NotificationFailed")
        sent = await api.published("NotificationSent")
    assert [(r["channel"], r["state"]) for r in rows] == [("whatsapp", "failed"), ("sms", "sent")]
    assert len(whatsapp.received) == 1
    [event] = failed
    assert event.payload["reason"] == "provider_rejected"
    assert event.payload["provider_error_code"] == "131026"
    assert event.payload["final"] is False and event.payload["channel"] == "whatsapp"
    [text] = sms.received
    assert text.body["to"] == "+6281234567890" and text.body["sender"] == "MPPSKM"
    assert text.body["reference"] == rows[1]["id"]
    assert "perlu dilengkapi" in text.body["text"] and len(text.body["text"]) <= 160
    assert [e.payload["channel"] for e in sent] == ["sms"]


async def test_exhausted_retries_fall_back_and_the_last_channel_failing_is_final(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref = citizen_ref()
    whatsapp.default = "503"
    sms.default = "404"
    async with running_notification(
        database_url, providers=http_providers(whatsapp, sms), breaker_threshold=100
    ) as api:
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.settle()
        rows = await api.deliveries(returned)
        failed = await api.published("NotificationFailed")
    assert [(r["channel"], r["state"], r["attempts"]) for r in rows] == [
        ("whatsapp", "failed", 4),
        ("sms", "failed", 1),
    ]
    assert len(whatsapp.received) == 4
    assert [(e.payload["reason"], e.payload["final"]) for e in failed] == [
        ("provider_unavailable", False),
        ("invalid_recipient", True),
    ]


async def test_an_open_circuit_sends_later_messages_straight_to_the_next_channel(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    whatsapp.default = "503"
    refs = [citizen_ref() for _ in range(5)]
    async with running_notification(
        database_url,
        providers=http_providers(whatsapp, sms),
        breaker_threshold=2,
        breaker_reset_s=3600,
        max_attempts=2,
    ) as api:
        await api.deliver(*(contact_event(r) for r in refs))
        first = application_returned(refs[0])
        await api.deliver(first)
        await api.settle()
        others = [application_returned(r) for r in refs[1:]]
        await api.deliver(*others)
        await api.settle()
        rows = await api.deliveries()
    assert len(whatsapp.received) == 2, "the breaker opened after two failures and stopped the calls"
    assert len(sms.sent) == 5
    circuit = [r for r in rows if r["provider_error_code"] == "circuit_open"]
    assert len(circuit) == 4 and all(r["attempts"] == 0 and r["channel"] == "whatsapp" for r in circuit)


async def test_slow_answers_within_the_timeout_are_sent_and_messages_go_out_concurrently(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    whatsapp.default = "slow"
    whatsapp.slow_s = 0.2
    refs = [citizen_ref() for _ in range(8)]
    async with running_notification(
        database_url, providers=http_providers(whatsapp, sms, timeout_s=2)
    ) as api:
        await api.deliver(*(contact_event(r) for r in refs))
        await api.deliver(*(application_returned(r) for r in refs))
        await api.settle()
        rows = await api.deliveries()
    assert [r["state"] for r in rows] == ["sent"] * 8
    assert whatsapp.max_in_flight > 1


async def test_messages_to_one_citizen_keep_the_order_of_their_triggers(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref, visit = citizen_ref(), f"vis-{uuid.uuid4().hex[:10]}"
    whatsapp.answer("503", "503")  # the first message is retried: the later ones must wait for it
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        await api.deliver(contact_event(ref), visit_started(ref, visit))
        calls = [ticket_called(visit, number=f"A-{n:03d}") for n in range(1, 6)]
        for call in calls:
            await api.deliver(call)
        await api.settle()
    numbers = [r.body["template"]["components"][0]["parameters"][0]["text"] for r in whatsapp.sent]
    assert numbers == [f"A-{n:03d}" for n in range(1, 6)]


async def test_the_rate_limit_paces_a_burst(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    refs = [citizen_ref() for _ in range(12)]
    async with running_notification(
        database_url, providers=http_providers(whatsapp, sms), whatsapp_rate_per_s=40, whatsapp_burst=2
    ) as api:
        await api.deliver(*(contact_event(r) for r in refs))
        await api.deliver(*(application_returned(r) for r in refs))
        started = time.monotonic()
        await api.settle()
    times = sorted(r.at for r in whatsapp.received)
    assert len(times) == 12
    # The bucket holds at most 2 tokens when the burst starts, then gains one every 25 ms: the 12th
    # request cannot leave before 10 more tokens have accrued.
    assert times[-1] - started >= 10 / 40


async def test_critical_messages_ignore_an_opt_out_optional_ones_respect_it(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref, visit = citizen_ref(), f"vis-{uuid.uuid4().hex[:10]}"
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        issued = ticket_issued(visit)
        called = ticket_called(visit, ticket_id=issued.payload.ticket_id)  # type: ignore[attr-defined]
        await api.deliver(contact_event(ref, consent=False), visit_started(ref, visit), issued, called)
        await api.settle()
        [refused] = await api.deliveries(issued)
        [done] = await api.deliveries(called)
        failed = await api.published("NotificationFailed")
    assert (
        refused["state"] == "failed"
        and refused["failure_reason"] == "no_consent"
        and refused["channel"] == "none"
    )
    assert done["state"] == "sent"
    [event] = failed
    assert event.payload["reason"] == "no_consent" and event.payload["final"] is True
    assert event.payload["channel"] is None
    assert len(whatsapp.received) == 1


async def test_quiet_hours_delay_non_urgent_messages_but_not_urgent_ones(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    ref, visit = citizen_ref(), f"vis-{uuid.uuid4().hex[:10]}"
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        api.clock.at = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 22:30 WIB
        submitted, called = application_submitted(ref), ticket_called(visit)
        await api.deliver(contact_event(ref), visit_started(ref, visit), submitted, called)
        await api.service.dispatcher.dispatch_once()
        [waiting] = await api.deliveries(submitted)
        [urgent] = await api.deliveries(called)
        assert urgent["state"] == "sent"
        assert waiting["state"] == "pending"
        assert waiting["not_before"] == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 07:00 WIB
        assert len(whatsapp.received) == 1
        api.clock.at = datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC)
        await api.settle()
        [morning] = await api.deliveries(submitted)
    assert morning["state"] == "sent" and len(whatsapp.received) == 2


async def test_an_invalid_phone_fails_the_message_and_the_service_keeps_going(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    bad, good = citizen_ref(), citizen_ref()
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        first, second = application_returned(bad), application_returned(good)
        # A landline passes the contract's pattern but cannot take WhatsApp or SMS.
        await api.deliver(contact_event(bad, phone="+622155512345"), contact_event(good), first, second)
        await api.settle()
        bad_rows = await api.deliveries(first)
        [good_row] = await api.deliveries(second)
        failed = await api.published("NotificationFailed")
    assert [(r["channel"], r["failure_reason"]) for r in bad_rows] == [
        ("whatsapp", "invalid_recipient"),
        ("sms", "invalid_recipient"),
    ]
    assert [e.payload["final"] for e in failed] == [False, True]
    assert good_row["state"] == "sent"
    assert len(whatsapp.received) == 1 and sms.received == []


async def test_no_contact_is_a_final_failure_and_anonymous_visits_send_nothing(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    async with running_notification(database_url, providers=http_providers(whatsapp, sms)) as api:
        returned = application_returned(citizen_ref())
        await api.deliver(returned, ticket_called(f"vis-{uuid.uuid4().hex[:10]}"))
        await api.settle()
        rows = await api.deliveries()
        failed = await api.published("NotificationFailed")
    assert [(r["trigger_event_id"], r["failure_reason"]) for r in rows] == [(str(returned.id), "no_contact")]
    assert [e.payload["reason"] for e in failed] == ["no_contact"]
    assert whatsapp.received == []


async def test_a_hanging_provider_call_holds_up_only_its_own_recipient(
    database_url: str, whatsapp: FakeGateway, sms: FakeGateway
) -> None:
    slow, quick, later_one = citizen_ref(), citizen_ref(), citizen_ref()
    whatsapp.by_recipient["6281100000001"] = "timeout"
    whatsapp.hang_s = 2.0
    async with running_notification(
        database_url, providers=http_providers(whatsapp, sms, timeout_s=1.5)
    ) as api:
        await api.deliver(
            contact_event(slow, phone="+6281100000001"),
            contact_event(quick, phone="+6281100000002"),
            contact_event(later_one, phone="+6281100000003"),
        )
        stop = asyncio.Event()
        running = asyncio.create_task(api.service.dispatcher.run(stop))
        try:
            await api.deliver(application_returned(slow), application_returned(quick))
            api.service.dispatcher.kick.set()
            await whatsapp.until(lambda: any(r.body["to"] == "6281100000001" for r in whatsapp.received))
            # A new trigger while the first call hangs: it must not wait for it.
            await api.deliver(application_returned(later_one))
            api.service.dispatcher.kick.set()
            await whatsapp.until(lambda: "6281100000003" in whatsapp.completed)
            hanging = [r for r in await api.deliveries() if r["recipient_ref"] == slow]
        finally:
            stop.set()
            await running
    assert [r["state"] for r in hanging] == ["sending"], (
        "the later message went out while the first call hung"
    )
    assert "6281100000002" in whatsapp.completed
