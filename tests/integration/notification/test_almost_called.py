""" "Your number is almost called": derived from the queue's events (issue, call, cancel, no-show,
transfer) per site, service and day; each ticket told once, whatever the redeliveries, priority tickets
overtaking or transfers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.events.notification import NotificationChannel
from mpp.contracts.events.queue import (
    CancelledBy,
    TicketCalledV1,
    TicketCancelledV1,
    TicketIssuedV1,
    TicketTransferredV1,
    VisitStartedV1,
)
from mpp.notification.app import DEFAULT_TRIGGERS
from mpp.notification.persistence.tables import deliveries, queue_tickets
from mpp.notification.ports import Provider
from mpp.notification.providers import WhatsAppCloudProvider
from tests.integration.notification.fakes import FakeGateway
from tests.integration.notification.harness import (
    DAYTIME,
    NotificationApi,
    contact_event,
    running_notification,
    wrap,
)

pytestmark = pytest.mark.integration

KTP = "disdukcapil.ktp-el-rekam"
KK = "disdukcapil.kk"
KIND = "ticket_almost_called"


def trigger_file(tmp_path: Path, tickets_ahead: int) -> Path:
    config = json.loads(DEFAULT_TRIGGERS.read_text(encoding="utf-8"))
    config["almost_called"]["tickets_ahead"] = tickets_ahead
    path = tmp_path / "triggers.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@dataclass
class Queue:
    """Builds one day's queue events: each ticket belongs to its own visit and citizen."""

    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def join(
        self,
        number: str,
        minute: float,
        *,
        service: str = KTP,
        group: PriorityGroup = PriorityGroup.NONE,
        contact: bool = True,
        citizen: str | None = None,
        visit: str | None = None,
        transferred_from: str | None = None,
    ) -> list[Envelope]:
        ref = citizen or f"c_{uuid.uuid4().hex}"
        visit_id = visit or f"vis-{uuid.uuid4().hex[:10]}"
        ticket_id = f"tkt-{number}-{uuid.uuid4().hex[:6]}"
        self.tickets[number] = {"id": ticket_id, "visit": visit_id, "ref": ref, "service": service}
        at = DAYTIME + timedelta(minutes=minute)
        events = []
        if contact:
            events.append(contact_event(ref))
        if visit is None:
            events.append(
                wrap(
                    VisitStartedV1(
                        visit_id=visit_id, channel=Channel.WALK_IN, citizen_ref=ref, started_at=at
                    ),
                    producer="mpp.queue",
                    agency="mpp",
                    subject=visit_id,
                )
            )
        events.append(
            wrap(
                TicketIssuedV1(
                    visit_id=visit_id,
                    ticket_id=ticket_id,
                    ticket_number=number,
                    service_type=service,
                    agency="disdukcapil",
                    priority_group=group,
                    channel=Channel.WALK_IN,
                    issued_at=at,
                    transferred_from=transferred_from,
                ),
                producer="mpp.queue",
                agency="disdukcapil",
                subject=visit_id,
            )
        )
        return events

    def call(self, number: str, minute: float) -> Envelope:
        t = self.tickets[number]
        at = DAYTIME + timedelta(minutes=minute)
        return wrap(
            TicketCalledV1(
                visit_id=t["visit"],
                ticket_id=t["id"],
                ticket_number=number,
                service_type=t["service"],
                agency="disdukcapil",
                counter="loket-02",
                officer_ref="usr-dukcapil-017",
                called_at=at,
                waiting_seconds=60,
            ),
            producer="mpp.queue",
            agency="disdukcapil",
            subject=t["visit"],
        )

    def cancel(self, number: str, minute: float) -> Envelope:
        t = self.tickets[number]
        return wrap(
            TicketCancelledV1(
                visit_id=t["visit"],
                ticket_id=t["id"],
                service_type=t["service"],
                agency="disdukcapil",
                cancelled_by=CancelledBy.CITIZEN,
                reason_code="citizen_left",
                cancelled_at=DAYTIME + timedelta(minutes=minute),
                waiting_seconds=60,
            ),
            producer="mpp.queue",
            agency="disdukcapil",
            subject=t["visit"],
        )

    def transfer(self, number: str, to_number: str, minute: float, *, to_service: str) -> list[Envelope]:
        t = self.tickets[number]
        transferred = wrap(
            TicketTransferredV1(
                visit_id=t["visit"],
                ticket_id=t["id"],
                from_service_type=t["service"],
                to_service_type=to_service,
                from_agency="disdukcapil",
                to_agency="disdukcapil",
                officer_ref="usr-dukcapil-017",
                transferred_at=DAYTIME + timedelta(minutes=minute),
                to_ticket_number=to_number,
            ),
            producer="mpp.queue",
            agency="disdukcapil",
            subject=t["visit"],
        )
        issued = self.join(
            to_number,
            minute,
            service=to_service,
            contact=False,
            citizen=t["ref"],
            visit=t["visit"],
            transferred_from=t["id"],
        )
        return [transferred, *issued]

    def number_of(self, ref: str) -> str:
        return next(n for n, t in self.tickets.items() if t["ref"] == ref)


async def alerted(api: NotificationApi, queue: Queue) -> list[tuple[str, int]]:
    """(ticket number, tickets ahead) of every "almost called" record, in the order they were made."""
    rows = [r for r in await api.deliveries() if r["message_kind"] == KIND]
    rows.sort(key=lambda r: (r["created_at"], r["context"]["tickets_ahead"]))
    numbers = {t["ref"]: n for n, t in queue.tickets.items()}
    # A transferred citizen holds two tickets: the record names the one in its context.
    return [
        (r["context"]["ticket_number"], r["context"]["tickets_ahead"])
        for r in rows
        if r["recipient_ref"] in numbers
    ]


async def test_a_call_tells_the_tickets_it_brings_within_reach_once_whatever_the_redeliveries(
    database_url: str, tmp_path: Path
) -> None:
    q = Queue()
    setup = [e for n in range(1, 9) for e in q.join(f"A-00{n}", n)]
    async with running_notification(database_url, trigger_file=trigger_file(tmp_path, 2)) as api:
        await api.deliver(*setup)
        assert await alerted(api, q) == []  # issuing tells nobody: only calls do
        first = q.call("A-001", 20)
        await api.deliver(first)
        assert await alerted(api, q) == [("A-002", 0), ("A-003", 1), ("A-004", 2)]
        await api.deliver(first)  # the same call consumed again
        await api.deliver(*setup, first)  # the whole day replayed
        assert len(await alerted(api, q)) == 3
        second = q.call("A-002", 25)
        await api.deliver(second)
        await api.deliver(q.call("A-002", 26))  # a recall: a new event, nothing new within reach
        await api.deliver(second)
        assert await alerted(api, q) == [("A-002", 0), ("A-003", 1), ("A-004", 2), ("A-005", 2)]
        # A cancellation ahead brings two tickets closer; the next call tells the one now within reach.
        await api.deliver(q.cancel("A-004", 27), q.call("A-003", 28))
        assert (await alerted(api, q))[4:] == [("A-006", 1), ("A-007", 2)]
        rows = [r for r in await api.deliveries() if r["message_kind"] == KIND]
        rows.sort(key=lambda r: (r["created_at"], r["context"]["tickets_ahead"]))
    assert len({r["recipient_ref"] for r in rows}) == len(rows) == 6
    assert all(r["trigger_event_type"] == "TicketCalled" and r["state"] == "pending" for r in rows)
    assert {r["trigger_event_id"] for r in rows[:3]} == {str(first.id)}
    assert rows[3]["trigger_event_id"] == str(second.id)


async def test_priority_tickets_overtake_and_an_overtaken_ticket_is_not_told_twice(
    database_url: str, tmp_path: Path
) -> None:
    q = Queue()
    setup = [e for n in range(1, 8) for e in q.join(f"A-00{n}", n)]
    async with running_notification(database_url, trigger_file=trigger_file(tmp_path, 2)) as api:
        await api.deliver(*setup, q.call("A-001", 10))
        assert await alerted(api, q) == [("A-002", 0), ("A-003", 1), ("A-004", 2)]
        # Two elderly citizens arrive at minute 12: 30 minutes of head start put them first.
        await api.deliver(*q.join("P-001", 12, group=PriorityGroup.LANSIA))
        await api.deliver(*q.join("P-002", 12.5, group=PriorityGroup.LANSIA))
        await api.deliver(q.call("P-001", 13))
        # P-002 is next (told); A-002..A-004 were told already and are not told again though pushed back.
        assert (await alerted(api, q))[3:] == [("P-002", 0)]
        await api.deliver(q.call("P-002", 14))
        assert (await alerted(api, q))[4:] == []  # A-005 has 3 tickets ahead
        await api.deliver(q.call("A-002", 15))
        assert (await alerted(api, q))[4:] == [("A-005", 2)]
        # A child (15 min head start) issued at minute 16 ranks as of minute 1: ahead of every A ticket.
        await api.deliver(*q.join("K-001", 16, group=PriorityGroup.ANAK), q.call("A-003", 17))
        assert (await alerted(api, q))[5:] == [("K-001", 0)]
        numbers = [n for n, _ in await alerted(api, q)]
    assert len(numbers) == len(set(numbers))


async def test_a_transferred_ticket_ranks_with_its_waiting_credit_in_the_new_queue(
    database_url: str, tmp_path: Path
) -> None:
    q = Queue()
    events = [*q.join("A-001", 0), *q.join("A-002", 1)]
    # The KK queue: B tickets issued at minutes 5, 8, 12 and 14.
    events += [
        e for n, minute in ((1, 5), (2, 8), (3, 12), (4, 14)) for e in q.join(f"B-00{n}", minute, service=KK)
    ]
    async with running_notification(database_url, trigger_file=trigger_file(tmp_path, 1)) as api:
        await api.deliver(*events)
        # A-001 waited 20 minutes for its first call, then was sent to the KK queue at minute 25: it brings
        # 15 minutes of credit (the cap) and ranks as if it joined at minute 10, after B-001 and B-002.
        await api.deliver(q.call("A-001", 20), *q.transfer("A-001", "B-005", 25, to_service=KK))
        assert await alerted(api, q) == [("A-002", 0)]  # the KTP queue: A-001 left it
        await api.deliver(q.call("B-001", 26))
        assert (await alerted(api, q))[1:] == [("B-002", 0), ("B-005", 1)]
        rows = [r for r in await api.deliveries() if r["message_kind"] == KIND]
    transferred = next(r for r in rows if r["context"]["ticket_number"] == "B-005")
    assert transferred["recipient_ref"] == q.tickets["A-001"]["ref"]
    assert transferred["context"]["service_name"] != KK  # named from the catalogue


async def test_tickets_without_a_citizen_or_contact_are_skipped_without_a_failure(
    database_url: str, tmp_path: Path
) -> None:
    q = Queue()
    events = [*q.join("A-001", 1), *q.join("A-002", 2, contact=False), *q.join("A-003", 3)]
    async with running_notification(database_url, trigger_file=trigger_file(tmp_path, 3)) as api:
        await api.deliver(*events, q.call("A-001", 5))
        assert await alerted(api, q) == [("A-003", 1)]
        failed = await api.published("NotificationFailed")
        assert [e for e in failed if e.payload["message_kind"] == KIND] == []
        # A later call does not come back to the skipped ticket.
        await api.deliver(*q.join("A-004", 6), q.call("A-002", 7))
        assert (await alerted(api, q))[1:] == [("A-004", 1)]


async def test_the_message_goes_out_on_whatsapp_with_the_tickets_ahead(
    database_url: str, tmp_path: Path, whatsapp: FakeGateway
) -> None:
    q = Queue()
    events = [e for n in range(1, 5) for e in q.join(f"A-00{n}", n)]
    providers: dict[NotificationChannel, Provider] = {
        NotificationChannel.WHATSAPP: WhatsAppCloudProvider(
            base_url=whatsapp.url, phone_number_id="1098765432", token="wa-token"
        )
    }
    async with running_notification(
        database_url, providers=providers, trigger_file=trigger_file(tmp_path, 2)
    ) as api:
        await api.deliver(*events, q.call("A-001", 10))
        await api.settle()
        sent = await api.published("NotificationSent")
        async with api.engine.connect() as conn:
            query = deliveries.select().where(deliveries.c.message_kind == KIND)
            states = {r.state for r in (await conn.execute(query)).all()}
    bodies = [r.body["template"] for r in whatsapp.received if r.body["template"]["name"] == f"mpp_{KIND}"]
    parameters = sorted(tuple(p["text"] for p in b["components"][0]["parameters"]) for b in bodies)
    assert [p[0] for p in parameters] == ["A-002", "A-003", "A-004"]
    assert [p[2] for p in parameters] == ["0", "1", "2"]
    assert {e.payload["message_kind"] for e in sent} >= {KIND}
    assert states == {"sent"}


async def test_the_copy_of_past_days_queues_is_dropped(database_url: str, tmp_path: Path) -> None:
    q = Queue()
    old = q.join("A-001", -3 * 24 * 60)  # three days before
    async with running_notification(database_url, trigger_file=trigger_file(tmp_path, 2)) as api:
        api.clock.at = DAYTIME - timedelta(days=3)
        await api.deliver(*old)
        api.clock.at = DAYTIME
        await api.deliver(*q.join("A-002", 1))
        async with api.engine.connect() as conn:
            kept = [r.ticket_number for r in (await conn.execute(queue_tickets.select())).all()]
    assert kept == ["A-002"]
