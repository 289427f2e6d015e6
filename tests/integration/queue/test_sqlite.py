"""The embedded default: the same API on a SQLite file in one process, concurrent requests included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

import tests.integration.queue.test_feedback as feedback
import tests.integration.queue.test_lifecycle as lifecycle
import tests.integration.queue.test_transfer_and_policy as transfer_and_policy
from mpp.kit.auth import Role
from tests.integration.queue.harness import KK, KTP, QueueApi, bearer, kiosk, officer, operator, running_queue

pytestmark = pytest.mark.integration


async def test_concurrent_issue_and_calls_on_sqlite(tmp_path: Path) -> None:
    async with running_queue(f"sqlite:///{tmp_path / 'queue.db'}") as queue:
        visits = await asyncio.gather(*(queue.start_visit(KTP) for _ in range(12)))
        await queue.open_counter("loket-01", officer("disdukcapil", "officer-1"))
        await queue.open_counter("loket-02", officer("disdukcapil", "officer-2"))
        called: list[str] = []
        for _ in range(6):
            pair = await asyncio.gather(
                queue.call_next("loket-01", officer("disdukcapil", "officer-1")),
                queue.call_next("loket-02", officer("disdukcapil", "officer-2")),
            )
            for response in pair:
                ticket = response.json()["ticket"]
                called.append(ticket["id"])
                await queue.act(ticket["id"], "start", officer())
                await queue.act(ticket["id"], "complete", officer())

        numbers = sorted(v["tickets"][0]["number"] for v in visits)
        assert numbers == [f"A-{n:03d}" for n in range(1, 13)]
        assert sorted(called) == sorted(v["tickets"][0]["id"] for v in visits)
        ended = [e for e in await queue.events() if e.event_type == "VisitEnded"]
        assert len(ended) == 12


async def test_appointments_on_sqlite_keep_the_quota_and_the_slot_time(tmp_path: Path) -> None:
    async with running_queue(f"sqlite:///{tmp_path / 'queue.db'}", appointment_quota_per_slot=3) as queue:
        slot = "2026-11-03T10:00:00+07:00"
        responses = await asyncio.gather(
            *(
                queue.client.post(
                    "/v1/appointments",
                    json={"service_type": KK, "slot_start": slot},
                    headers=bearer(roles=[Role.CITIZEN], agency=None, site=None, subject=f"citizen-{n}"),
                )
                for n in range(8)
            )
        )
        booked = [r.json() for r in responses if r.status_code == 201]
        listing = await queue.client.get(
            "/v1/public/appointments/slots", params={"service_type": KK, "from": "2026-11-03"}
        )
        ten = next(s for s in listing.json()["days"][0]["slots"] if s["start"] == slot)
        queue.clock.advance(minutes=30)  # 09:45
        checked = await queue.client.post(
            "/v1/appointments/check-in", json={"booking_code": booked[0]["booking_code"]}, headers=kiosk()
        )
        queue.clock.advance(minutes=31)  # 10:16
        swept = await queue.client.post("/v1/appointments/missed-sweep", headers=operator())

        assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 5
        assert booked[0]["slot_start"] == slot
        assert (ten["booked"], ten["available"]) == (3, 0)
        assert checked.status_code == 201
        assert datetime.fromisoformat(checked.json()["ticket"]["queued_at"]) == datetime.fromisoformat(slot)
        assert swept.json()["count"] == 2


# The counters' cycle (call-next, start, complete) runs hand-written statements on PostgreSQL and
# SQLAlchemy's on SQLite: the same tests for both (the base classes run on PostgreSQL).


class OnSqlite:
    @pytest.fixture
    async def queue(self, tmp_path: Path) -> AsyncIterator[QueueApi]:
        async with running_queue(f"sqlite:///{tmp_path / 'queue.db'}") as api:
            yield api


class TestServeTicketOnSqlite(OnSqlite, lifecycle.TestServeTicket):
    pass


class TestCountersOnSqlite(OnSqlite, lifecycle.TestCounters):
    pass


class TestDecisionOnSqlite(OnSqlite, transfer_and_policy.TestDecision):
    pass


class TestPolicyOnSqlite(OnSqlite, transfer_and_policy.TestPolicy):
    pass


async def test_a_survey_of_a_service_completed_on_sqlite_is_answered_once(tmp_path: Path) -> None:
    async with running_queue(f"sqlite:///{tmp_path / 'queue.db'}") as api:
        await feedback.test_a_completed_service_hands_out_a_survey_answered_once_and_anonymously(api)
