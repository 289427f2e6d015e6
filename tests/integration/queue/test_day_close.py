"""The day close: after a site's closing time (plus grace) what is left open is closed, with its events,
once, however many replicas run it at the same time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mpp.queue.sweeper import close_days_once, close_site_day
from tests.integration.queue.harness import KK, KTP, SITE, QueueApi, officer, operator

pytestmark = pytest.mark.integration

# The harness's today is Tuesday 2026-11-03, 09:15 in Jakarta; the site closes at 16:00, and the day
# closes an hour later.


async def _state(queue: QueueApi, ticket_id: str, agency: str = "disdukcapil") -> str:
    response = await queue.client.get(f"/v1/tickets/{ticket_id}", headers=officer(agency))
    assert response.status_code == 200, response.text
    state: str = response.json()["state"]
    return state


async def _close(queue: QueueApi) -> dict[str, Any]:
    response = await queue.client.post("/v1/day-close", headers=operator())
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def _a_day_left_open(queue: QueueApi) -> dict[str, str]:
    """Tickets in every open state, a finished visit and two open counters."""
    done = await queue.ticket(KTP)
    called = await queue.ticket(KTP)
    serving = await queue.ticket(KTP)
    waiting = await queue.start_visit(KTP, KK)
    await queue.open_counter("loket-01", officer())
    await queue.open_counter("loket-02", officer(subject="officer-2"))
    first = await queue.call_next("loket-01", officer())
    assert first.json()["ticket"]["id"] == done["id"]
    for action in ("start", "complete"):
        assert (await queue.act(done["id"], action, officer())).status_code == 200
    assert (await queue.call_next("loket-01", officer())).json()["ticket"]["id"] == called["id"]
    second = await queue.call_next("loket-02", officer(subject="officer-2"))
    assert second.json()["ticket"]["id"] == serving["id"]
    assert (await queue.act(serving["id"], "start", officer(subject="officer-2"))).status_code == 200
    return {
        "done": done["id"],
        "called": called["id"],
        "serving": serving["id"],
        "waiting_ktp": waiting["tickets"][0]["id"],
        "waiting_kk": waiting["tickets"][1]["id"],
        "waiting_visit": waiting["visit_id"],
        "called_visit": called["visit_id"],
        "serving_visit": serving["visit_id"],
        "done_visit": done["visit_id"],
    }


class TestDayClose:
    async def test_nothing_closes_before_closing_time_and_its_grace(self, queue: QueueApi) -> None:
        ids = await _a_day_left_open(queue)
        queue.clock.advance(hours=7, minutes=44)  # 16:59, within the grace after 16:00

        report = await _close(queue)

        assert sum(report.values()) == 0
        assert await _state(queue, ids["waiting_ktp"]) == "waiting"
        assert await _state(queue, ids["called"]) == "called"

    async def test_after_closing_what_is_open_is_closed_with_its_events(self, queue: QueueApi) -> None:
        ids = await _a_day_left_open(queue)
        queue.clock.advance(hours=7, minutes=46)  # 17:01

        report = await _close(queue)

        assert report == {
            "tickets_cancelled": 3,  # two waiting, one being served
            "tickets_no_show": 1,
            "visits_ended": 3,
            "counters_closed": 2,
        }
        assert [await _state(queue, ids[k]) for k in ("waiting_ktp", "waiting_kk", "serving", "called")] == [
            "cancelled",
            "cancelled",
            "cancelled",
            "no_show",
        ]
        assert await _state(queue, ids["done"]) == "completed"
        cancelled = [e for e in await queue.events() if e.event_type == "TicketCancelled"]
        assert {e.payload["ticket_id"] for e in cancelled} == {
            ids["waiting_ktp"],
            ids["waiting_kk"],
            ids["serving"],
        }
        assert {(e.payload["cancelled_by"], e.payload["reason_code"]) for e in cancelled} == {
            ("system", "day_closed")
        }
        waiting_visit = await queue.event_types(ids["waiting_visit"])
        assert waiting_visit[-1] == "VisitEnded"
        ended = [e for e in await queue.events() if e.event_type == "VisitEnded"]
        by_visit = {e.payload["visit_id"]: e.payload for e in ended}
        assert set(by_visit) == {
            ids[k] for k in ("done_visit", "waiting_visit", "called_visit", "serving_visit")
        }
        assert (
            by_visit[ids["waiting_visit"]]["tickets"],
            by_visit[ids["waiting_visit"]]["tickets_served"],
        ) == (
            2,
            0,
        )
        closed = [e.payload for e in await queue.events() if e.event_type == "CounterClosed"]
        assert sorted((c["counter"], c["reason"]) for c in closed) == [
            ("loket-01", "end_of_day"),
            ("loket-02", "end_of_day"),
        ]
        counters = await queue.client.get("/v1/counters", headers=officer())
        assert not any(c["open"] for c in counters.json()["items"])

    async def test_closing_again_changes_nothing(self, queue: QueueApi) -> None:
        await _a_day_left_open(queue)
        queue.clock.advance(hours=8)
        await _close(queue)
        events_before = len(await queue.events())

        again = await _close(queue)

        assert sum(again.values()) == 0
        assert len(await queue.events()) == events_before

    async def test_replicas_closing_at_once_close_each_ticket_once(self, queue: QueueApi) -> None:
        waiting = [await queue.ticket(KTP if n % 2 else KK) for n in range(40)]
        queue.clock.advance(hours=8)
        svc = queue.app.state.queue

        reports = await asyncio.gather(*(close_site_day(svc, SITE) for _ in range(3)))

        assert sum(r.tickets_cancelled for r in reports) == len(waiting)
        assert sum(r.visits_ended for r in reports) == len(waiting)
        cancelled = [
            e.payload["ticket_id"] for e in await queue.events() if e.event_type == "TicketCancelled"
        ]
        assert sorted(cancelled) == sorted(t["id"] for t in waiting)
        ended = [e.payload["visit_id"] for e in await queue.events() if e.event_type == "VisitEnded"]
        assert len(ended) == len(set(ended)) == len(waiting)

    async def test_the_background_close_finds_every_site_with_open_work(self, queue: QueueApi) -> None:
        ticket = await queue.ticket(KTP)
        svc = queue.app.state.queue

        early = await close_days_once(svc)
        queue.clock.advance(days=1)  # the next morning: yesterday is over
        late = await close_days_once(svc)

        assert early.total == 0
        assert (late.tickets_cancelled, late.visits_ended) == (1, 1)
        assert await _state(queue, ticket["id"]) == "cancelled"

    async def test_a_visit_that_took_no_ticket_ends_too(self, queue: QueueApi) -> None:
        empty = await queue.start_visit()
        queue.clock.advance(hours=8)

        report = await _close(queue)

        assert report["visits_ended"] == 1
        ended = [e.payload for e in await queue.events(empty["visit_id"]) if e.event_type == "VisitEnded"]
        assert [(e["tickets"], e["tickets_served"]) for e in ended] == [(0, 0)]

    async def test_only_the_operator_closes_the_day(self, queue: QueueApi) -> None:
        response = await queue.client.post("/v1/day-close", headers=officer())

        assert response.status_code == 403
