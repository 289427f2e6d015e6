"""A busy morning at the MPP, simulated through the API on PostgreSQL, then every event checked.

Kiosks issue hundreds of visits for several agencies (some with two services, some in a priority group),
appointments are checked in, while many counters call, recall, serve, transfer and mark no-shows at
once; citizens give up tickets, answer surveys and send complaints. The clock is shared and moves by
fractions of a second with every step. Afterwards the outbox must tell one consistent story.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.queue.harness import (
    OutboxEntry,
    QueueApi,
    kiosk,
    officer,
    operator,
    supervisor,
)

pytestmark = pytest.mark.integration

WIB = ZoneInfo("Asia/Jakarta")
VISITS = 200
SEED = 20261103

KTP, KK, NIB, PBG = "disdukcapil.ktp-el-rekam", "disdukcapil.kk", "dpmptsp.nib", "dpmptsp.pbg"
SKCK, PKB, PBB = "polres.skck", "samsat.pkb-tahunan", "bapenda.pbb-p2"
PREFIX = {KTP: "A", KK: "B", NIB: "C", PBG: "C", SKCK: "D", PKB: "E", PBB: "F"}
# Counters and the agency of their officer.
COUNTERS = {
    "loket-01": "disdukcapil",
    "loket-02": "disdukcapil",
    "loket-03": "disdukcapil",
    "loket-04": "disdukcapil",
    "loket-05": "dpmptsp",
    "loket-06": "dpmptsp",
    "loket-07": "polres",
    "loket-09": "samsat",
    "loket-10": "bapenda",
}
SERVED_AT = {
    KTP: ("loket-01", "loket-02"),
    KK: ("loket-03", "loket-04"),
    NIB: ("loket-05",),
    PBG: ("loket-06",),
    SKCK: ("loket-07",),
    PKB: ("loket-09",),
    PBB: ("loket-10",),
}
WEIGHTS = {KTP: 30, KK: 25, NIB: 12, PBG: 5, SKCK: 12, PKB: 10, PBB: 6}
REFERRALS = {KTP: KK, KK: KTP, NIB: PBG, PBG: NIB, SKCK: PKB, PKB: PBB, PBB: PKB}
GROUPS = ["lansia", "disabilitas", "ibu_hamil", "anak"]
SCORES = {f"U{i}": 4 for i in range(1, 10)}


@dataclass
class Morning:
    api: QueueApi
    rng: random.Random
    open_tickets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    calls: Counter[str] = field(default_factory=Counter)
    surveys: int = 0
    survey_refusals: int = 0
    checked_in: list[str] = field(default_factory=list)
    kiosks_done: bool = False

    def tick(self, most: float = 2.0) -> None:
        """Everything takes a moment: the shared clock moves by a fraction of a second or more."""
        self.api.clock.advance(seconds=self.rng.uniform(0.05, most))

    def track(self, ticket: dict[str, Any]) -> None:
        self.open_tickets[ticket["service_type"]].add(ticket["id"])

    def finish(self, ticket_id: str) -> None:
        for waiting in self.open_tickets.values():
            waiting.discard(ticket_id)

    def idle(self) -> bool:
        """The kiosks are done and nobody is left: a transfer may still send someone to any counter."""
        return self.kiosks_done and not any(self.open_tickets.values())


async def ok(response: Any, *expected: int) -> dict[str, Any]:
    assert response.status_code in (expected or (200,)), response.text
    body: dict[str, Any] = response.json()
    return body


async def kiosk_desk(m: Morning, n: int, appointments: list[tuple[str, datetime]]) -> None:
    api, rng = m.api, m.rng
    for i in range(n):
        first = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        services = [first]
        if rng.random() < 0.2:
            services.append(rng.choice([s for s in WEIGHTS if s != first]))
        group = rng.choice(GROUPS) if rng.random() < 0.15 else "none"
        m.tick(6)
        visit = await ok(
            await api.client.post(
                "/v1/visits",
                json={"service_types": services, "priority_group": group},
                headers=kiosk(),
            ),
            201,
        )
        for t in visit["tickets"]:
            m.track(t)
        if i % 25 == 0:
            # Too early: the service has not been completed yet.
            early = await api.client.post(
                f"/v1/public/surveys/{visit['tickets'][0]['id']}", json={"scores": SCORES}
            )
            assert early.status_code == 409, early.text
            m.survey_refusals += 1
        if i % 60 == 30:
            await ok(
                await api.client.post(
                    "/v1/public/complaints",
                    json={"category": "queue", "description": f"Antrean ramai ({i})", "agency": "dpmptsp"},
                ),
                201,
            )
        for code, slot in list(appointments):
            if slot.timestamp() - 25 * 60 <= api.clock.now().timestamp() <= slot.timestamp() + 10 * 60:
                checked = await ok(
                    await api.client.post(
                        "/v1/appointments/check-in", json={"booking_code": code}, headers=kiosk()
                    ),
                    201,
                )
                m.track(checked["ticket"])
                m.checked_in.append(checked["ticket"]["id"])
                appointments.remove((code, slot))
    m.kiosks_done = True


async def citizens_giving_up(m: Morning) -> None:
    """Now and then someone waiting leaves and cancels the ticket on their phone."""
    while not m.kiosks_done:
        await asyncio.sleep(0.05)
        waiting = sorted(t for ids in m.open_tickets.values() for t in ids)
        if not waiting or m.rng.random() < 0.6:
            continue
        ticket_id = m.rng.choice(waiting)
        response = await m.api.client.post(f"/v1/public/tickets/{ticket_id}/cancel")
        if response.status_code == 200:
            m.finish(ticket_id)
        else:  # already called onwards, served or moved: not cancellable any more
            assert response.status_code == 409, response.text


async def counter_desk(m: Morning, code: str) -> None:
    api, rng = m.api, m.rng
    agency = COUNTERS[code]
    me = officer(agency, f"officer-{code}")
    services = tuple(s for s, at in SERVED_AT.items() if code in at)
    await api.open_counter(code, me, service_types=list(services))
    complaints = 0
    while True:
        m.tick(1)
        response = await api.call_next(code, me)
        body = await ok(response)
        ticket = body["ticket"]
        if ticket is None:
            if m.idle():
                break
            await asyncio.sleep(0.03)
            continue
        ticket_id = ticket["id"]
        m.calls[ticket_id] += 1
        fate = rng.random()
        if fate < 0.06:  # nobody comes: called three times, then a no-show
            for _ in range(2):
                m.tick(3)
                recalled = await api.act(ticket_id, "recall", me)
                if recalled.status_code == 409:  # the citizen cancelled meanwhile
                    break
                m.calls[ticket_id] += 1
            m.tick(3)
            if (await api.act(ticket_id, "no-show", me)).status_code == 200:
                m.finish(ticket_id)
            continue
        if fate < 0.14:
            m.tick(3)
            if (await api.act(ticket_id, "recall", me)).status_code == 200:
                m.calls[ticket_id] += 1
        m.tick(2)
        started = await api.act(ticket_id, "start", me)
        if started.status_code == 409:  # cancelled by the citizen after the call
            continue
        assert started.status_code == 200, started.text
        m.tick(4)
        if fate > 0.94:
            moved = await ok(
                await api.client.post(
                    f"/v1/tickets/{ticket_id}/transfer",
                    json={"to_service_type": REFERRALS[ticket["service_type"]], "reason": "rujukan"},
                    headers=me,
                )
            )
            m.track(moved["new_ticket"])
            m.finish(ticket_id)
            continue
        done = await ok(await api.act(ticket_id, "complete", me))
        m.finish(ticket_id)
        if rng.random() < 0.4:
            await ok(
                await api.client.post(
                    f"/v1/public/surveys/{done['survey']['token']}",
                    json={"scores": SCORES, "respondent": {"age_band": "26_35"}, "channel": "kiosk"},
                ),
                201,
            )
            m.surveys += 1
            if rng.random() < 0.2:  # pressing "send" twice
                again = await api.client.post(f"/v1/public/surveys/{ticket_id}", json={"scores": SCORES})
                assert again.status_code == 409, again.text
        if complaints == 0 and rng.random() < 0.05:
            complaints += 1
            filed = await ok(
                await api.client.post(
                    "/v1/complaints",
                    json={"category": "facilities", "description": "AC ruang tunggu mati"},
                    headers=me,
                ),
                201,
            )
            await ok(
                await api.client.post(
                    f"/v1/complaints/{filed['id']}/resolve",
                    json={"outcome": "upheld", "resolution": "AC diperbaiki"},
                    headers=supervisor(agency),
                )
            )


async def book_appointments(api: QueueApi) -> list[tuple[str, datetime]]:
    booked = []
    for n, (service, local) in enumerate([(KK, "09:30"), (NIB, "09:30"), (KK, "10:00"), (NIB, "10:00")] * 3):
        slot = datetime.fromisoformat(f"2026-11-03T{local}:00+07:00")
        body = await ok(
            await api.client.post(
                "/v1/appointments",
                json={
                    "service_type": service,
                    "slot_start": slot.isoformat(),
                    "citizen_ref": f"ref-pagi-{n:03d}",
                },
                headers=operator(),
            ),
            201,
        )
        booked.append((body["booking_code"], slot))
    return booked


def at(payload: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(payload[key])


def whole(instant: datetime) -> int:
    return math.floor(instant.timestamp())


FINAL = {
    "ServiceCompleted": "completed_at",
    "TicketNoShow": "marked_at",
    "TicketCancelled": "cancelled_at",
    "TicketTransferred": "transferred_at",
}


def check_story(events: list[OutboxEntry], m: Morning) -> None:
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_type[e.event_type].append(e.payload)
    issued = {p["ticket_id"]: p for p in by_type["TicketIssued"]}
    assert len(issued) == len(by_type["TicketIssued"]) > VISITS

    # Numbering: unique per prefix and (site-local) day, with the service's prefix.
    numbers = Counter(
        (at(p, "issued_at").astimezone(WIB).date(), p["ticket_number"]) for p in issued.values()
    )
    assert max(numbers.values()) == 1
    assert all(p["ticket_number"].split("-")[0] == PREFIX[p["service_type"]] for p in issued.values())

    per_ticket: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for kind in ("TicketCalled", "ServiceStarted", *FINAL):
        for p in by_type[kind]:
            assert p["ticket_id"] in issued
            per_ticket[p["ticket_id"]][kind].append(p)

    finished_at: dict[str, datetime] = {}
    for ticket_id, ticket in issued.items():
        story = per_ticket[ticket_id]
        calls = story["TicketCalled"]
        # Called exactly once per call, numbered 1..n in order, as many as the counters made.
        assert [c["call_count"] for c in calls] == list(range(1, len(calls) + 1))
        assert len(calls) == m.calls[ticket_id]
        finals = [(kind, p) for kind in FINAL for p in story[kind]]
        assert len(finals) == 1, (ticket_id, finals)
        kind, final = finals[0]
        finished_at[ticket_id] = at(final, FINAL[kind])
        if kind in ("ServiceCompleted", "TicketNoShow"):
            assert calls, f"{kind} for a ticket never called"
            assert at(calls[0], "called_at") <= finished_at[ticket_id]
        if kind == "ServiceCompleted":
            (start,) = story["ServiceStarted"]
            assert at(calls[-1], "called_at") <= at(start, "started_at") <= finished_at[ticket_id]
            parts = final["waiting_seconds"] + final["walking_seconds"] + final["service_seconds"]
            assert parts == final["total_seconds"], final
            assert final["total_seconds"] == whole(finished_at[ticket_id]) - whole(at(ticket, "issued_at"))
            assert final["waiting_seconds"] == calls[0]["waiting_seconds"]
        if kind == "TicketTransferred":
            new = issued[final["to_ticket_id"]]
            assert new["visit_id"] == final["visit_id"] == ticket["visit_id"]
            assert new["transferred_from"] == ticket_id

    # Every visit ended once, exactly when its last ticket finished.
    started = {p["visit_id"] for p in by_type["VisitStarted"]}
    ended = {p["visit_id"]: p for p in by_type["VisitEnded"]}
    assert len(ended) == len(by_type["VisitEnded"]) == len(started)
    tickets_of: dict[str, list[str]] = defaultdict(list)
    for ticket_id, ticket in issued.items():
        tickets_of[ticket["visit_id"]].append(ticket_id)
    completed = {p["ticket_id"] for p in by_type["ServiceCompleted"]}
    for visit_id, visit in ended.items():
        own = tickets_of[visit_id]
        assert at(visit, "ended_at") == max(finished_at[t] for t in own)
        assert visit["tickets"] == len(own)
        assert visit["tickets_served"] == len([t for t in own if t in completed])

    # No survey without a completed service (per service, as surveys name no ticket).
    served = Counter(p["service_type"] for p in by_type["ServiceCompleted"])
    rated = Counter(p["service_type"] for p in by_type["SurveySubmitted"])
    assert all(rated[s] <= served[s] for s in rated)
    assert sum(rated.values()) == m.surveys > 0
    assert all(set(p) & {"ticket_id", "visit_id", "citizen_ref"} == set() for p in by_type["SurveySubmitted"])

    # Appointments checked in joined their own visit with their appointment on the ticket.
    for p in by_type["AppointmentCheckedIn"]:
        assert issued[p["ticket_id"]]["appointment_id"] == p["appointment_id"]
        assert issued[p["ticket_id"]]["visit_id"] == p["visit_id"]
    assert len(by_type["AppointmentCheckedIn"]) == len(m.checked_in) >= 6

    # Everything that happened at all.
    for kind in ("TicketCancelled", "TicketNoShow", "TicketTransferred", "ComplaintReceived"):
        assert by_type[kind], f"no {kind} in the morning"
    assert any(p["priority_group"] != "none" for p in issued.values())
    assert len({p["agency"] for p in issued.values()}) >= 5
    assert any(c["call_count"] > 1 for c in by_type["TicketCalled"])


async def test_a_busy_morning_tells_one_consistent_story(queue: QueueApi) -> None:
    m = Morning(queue, random.Random(SEED))
    appointments = await book_appointments(queue)
    assert queue.clock.now() == datetime(2026, 11, 3, 2, 15, tzinfo=UTC)

    await asyncio.gather(
        kiosk_desk(m, VISITS, appointments),
        citizens_giving_up(m),
        *(counter_desk(m, code) for code in COUNTERS),
    )

    assert not any(m.open_tickets.values())
    check_story(await queue.events(), m)
