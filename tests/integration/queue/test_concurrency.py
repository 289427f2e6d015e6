"""Many counters calling at once on PostgreSQL: every ticket is called exactly once, by one counter;
ticket numbers stay unique when kiosks issue at the same moment."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from mpp.contracts.events.queue import CancelledBy
from mpp.contracts.masterdata import Counter, load_demo_catalogue
from mpp.queue.app import CatalogueAdapter
from mpp.queue.handlers import HANDLERS, ActOnTicket, lock_visits_first
from mpp.queue.persistence import pg
from mpp.queue.persistence.tables import tickets, visits
from tests.integration.queue.harness import (
    KK,
    KTP,
    NIB,
    SITE,
    QueueApi,
    officer,
    running_queue,
    supervisor,
)
from tests.support.locks import until_a_lock_is_awaited

pytestmark = pytest.mark.integration

IKD = "disdukcapil.ikd"  # loket-01 serves it with KTP

COUNTERS = [f"loket-{n}" for n in range(20, 28)]
GROUPS = ["none", "none", "lansia", "none", "anak", "none", "disabilitas", "none", "ibu_hamil"]


def with_extra_counters(api: QueueApi) -> None:
    """Eight more disdukcapil counters for KK, so that many counters compete for one queue."""
    demo = load_demo_catalogue()
    extra = tuple(
        Counter(code=code, site=SITE, agency="disdukcapil", name=f"Loket {code[-2:]}", service_types=(KK,))
        for code in COUNTERS
    )
    api.app.state.queue.ports.catalogue = CatalogueAdapter(
        demo.model_copy(update={"counters": demo.counters + extra})
    )


async def work_counter(api: QueueApi, code: str, calls: list[tuple[str, str]], errors: list[str]) -> None:
    headers = officer(subject=f"officer-{code}")
    while True:
        response = await api.call_next(code, headers)
        if response.status_code != 200:
            errors.append(f"{code} call-next {response.status_code} {response.text}")
            return
        ticket: dict[str, Any] | None = response.json()["ticket"]
        if ticket is None:
            return
        calls.append((ticket["id"], code))
        for action in ("start", "complete"):
            done = await api.act(ticket["id"], action, headers)
            if done.status_code != 200:
                errors.append(f"{code} {action} {done.status_code} {done.text}")
                return


class TestConcurrentCallNext:
    async def test_counters_calling_in_parallel_call_each_ticket_exactly_once(self, queue: QueueApi) -> None:
        with_extra_counters(queue)
        issued = [(await queue.ticket(KK, priority_group=GROUPS[i % len(GROUPS)]))["id"] for i in range(60)]
        await queue.client.put(
            "/v1/policies/agencies/disdukcapil",
            json={"priority_every_nth": 3},
            headers=supervisor(),
        )
        for code in COUNTERS:
            await queue.open_counter(code, officer(subject=f"officer-{code}"))
        calls: list[tuple[str, str]] = []
        errors: list[str] = []

        await asyncio.gather(*(work_counter(queue, code, calls, errors) for code in COUNTERS))

        assert errors == []
        assert sorted(t for t, _ in calls) == sorted(issued)
        assert max(Tally(t for t, _ in calls).values()) == 1
        assert len({code for _, code in calls}) > 1
        events = [e for e in await queue.events() if e.event_type == "TicketCalled"]
        assert sorted(e.payload["ticket_id"] for e in events) == sorted(issued)
        by_ticket = {t: code for t, code in calls}
        assert all(by_ticket[e.payload["ticket_id"]] == e.payload["counter"] for e in events)

    async def test_two_presses_on_one_counter_call_one_ticket(self, queue: QueueApi) -> None:
        await queue.ticket(KTP)
        await queue.ticket(KTP)
        await queue.open_counter("loket-01", officer())

        first, second = await asyncio.gather(
            queue.call_next("loket-01", officer("disdukcapil", "officer-a")),
            queue.call_next("loket-01", officer("disdukcapil", "officer-b")),
        )

        assert sorted([first.status_code, second.status_code]) == [200, 409]
        async with queue.engine.connect() as conn:
            states = (await conn.execute(select(tickets.c.state).order_by(tickets.c.seq))).scalars().all()
        assert states == ["called", "waiting"]

    async def test_a_ticket_another_counter_holds_is_skipped_and_shown_in_the_decision(
        self, queue: QueueApi
    ) -> None:
        head = await queue.ticket(KTP)
        queue.clock.advance(seconds=30)
        second = await queue.ticket(KTP)
        await queue.open_counter("loket-01", officer())
        async with queue.engine.connect() as conn, conn.begin():
            # Another counter is in the middle of taking the head of the queue.
            await conn.execute(select(tickets.c.id).where(tickets.c.id == head["id"]).with_for_update())
            response = await queue.call_next("loket-01", officer())

        assert response.json()["ticket"]["id"] == second["id"]
        assert response.json()["decision"]["skipped_in_use"] == [head["id"]]

    async def test_when_every_first_ticket_is_held_call_next_walks_further_down_the_queue(
        self, queue: QueueApi
    ) -> None:
        issued = []
        for _ in range(pg.NEAR + 2):
            issued.append((await queue.ticket(KTP))["id"])
            queue.clock.advance(seconds=10)
        await queue.open_counter("loket-01", officer())
        held = issued[: pg.NEAR + 1]
        async with queue.engine.connect() as conn, conn.begin():
            # More counters than call-next reads ahead are each in the middle of taking one of them.
            await conn.execute(select(tickets.c.id).where(tickets.c.id.in_(held)).with_for_update())
            response = await queue.call_next("loket-01", officer())

        assert response.json()["ticket"]["id"] == issued[-1]
        assert response.json()["decision"]["skipped_in_use"] == issued[:5]

    async def test_the_queues_of_a_counters_service_types_are_merged_in_call_order(
        self, queue: QueueApi
    ) -> None:
        issued = []
        for service_type in (KTP, IKD, IKD, KTP, IKD, KTP):
            issued.append((await queue.ticket(service_type))["id"])
            queue.clock.advance(seconds=10)
        await queue.open_counter("loket-01", officer())
        async with queue.engine.connect() as conn, conn.begin():
            await conn.execute(select(tickets.c.id).where(tickets.c.id == issued[0]).with_for_update())
            response = await queue.call_next("loket-01", officer())

        decision = response.json()["decision"]
        assert response.json()["ticket"]["id"] == issued[1]
        assert [c["ticket_id"] for c in decision["candidates"]] == issued[:5]
        assert decision["waiting_considered"] == 5
        assert decision["skipped_in_use"] == [issued[0]]


class TestConcurrentIssue:
    async def test_kiosks_issuing_at_once_never_share_a_number(self, queue: QueueApi) -> None:
        visits = await asyncio.gather(*(queue.start_visit(KTP, "disdukcapil.ikd") for _ in range(25)))

        numbers = [t["number"] for v in visits for t in v["tickets"]]
        assert sorted(numbers) == sorted(f"A-{n:03d}" for n in range(1, 51))

    async def test_visits_asking_in_opposite_orders_do_not_deadlock(self, queue: QueueApi) -> None:
        # Each visit locks the day's sequence row of every prefix it draws from until it commits: drawn in
        # the order asked, A-then-C and C-then-A visits at the same moment would deadlock.
        orders = [(KTP, NIB) if i % 2 == 0 else (NIB, KTP) for i in range(30)]

        visits = await asyncio.gather(*(queue.start_visit(*order) for order in orders))

        for order, v in zip(orders, visits, strict=True):
            assert [t["service_type"] for t in v["tickets"]] == list(order)
        numbers = [t["number"] for v in visits for t in v["tickets"]]
        expected = [f"{p}-{n:03d}" for p in "AC" for n in range(1, 31)]
        assert sorted(numbers) == sorted(expected)


class TestVisitsEndOnce:
    @pytest.mark.parametrize("batch", [20, 1], ids=["batched", "one_per_transaction"])
    async def test_two_counters_completing_a_visits_tickets_at_once_end_it_once(
        self, fresh_database: Callable[[], Awaitable[str]], batch: int
    ) -> None:
        # A visit for two agencies: loket-01 serves its KTP ticket while loket-05 serves its NIB ticket,
        # and both complete at the same moment. The last to finish ends the visit, whichever it is, in
        # the same transaction or in two.
        async with running_queue(await fresh_database(), pool_size=20, cycle_batch_max=batch) as queue:
            ktp, nib = officer(subject="officer-ktp"), officer("dpmptsp", "officer-nib")
            await queue.open_counter("loket-01", ktp)
            await queue.open_counter("loket-05", nib)
            started = [await queue.start_visit(KTP, NIB) for _ in range(12)]
            for _ in started:
                pair = []
                for code, headers in (("loket-01", ktp), ("loket-05", nib)):
                    called = (await queue.call_next(code, headers)).json()["ticket"]
                    assert (await queue.act(called["id"], "start", headers)).status_code == 200
                    pair.append(called["id"])
                done = await asyncio.gather(
                    queue.act(pair[0], "complete", ktp), queue.act(pair[1], "complete", nib)
                )
                assert [r.status_code for r in done] == [200, 200]

            events = await queue.events()
            ended = [e.payload for e in events if e.event_type == "VisitEnded"]
            assert Tally(p["visit_id"] for p in ended) == {v["visit_id"]: 1 for v in started}
            finished = {
                e.payload["ticket_id"]: datetime.fromisoformat(e.payload["completed_at"])
                for e in events
                if e.event_type == "ServiceCompleted"
            }
            last = {v["visit_id"]: max(finished[t["id"]] for t in v["tickets"]) for v in started}
            assert all(datetime.fromisoformat(p["ended_at"]) == last[p["visit_id"]] for p in ended)
            async with queue.engine.connect() as conn:
                rows = (await conn.execute(select(visits))).mappings().all()
            assert {r["id"]: (r["ended_at"], r["tickets_total"], r["tickets_served"]) for r in rows} == {
                visit: (at, 2, 2) for visit, at in last.items()
            }


class TestDeadlockVictimsRunAgain:
    async def test_a_cancel_rolled_back_to_break_a_deadlock_runs_again_and_is_answered(
        self, queue: QueueApi, caplog: pytest.LogCaptureFixture
    ) -> None:
        # The cancel locks its ticket, then its visit. Another transaction holds the visit and then asks
        # for that ticket: a deadlock. The cancel waited first, so PostgreSQL rolls it back (after
        # deadlock_timeout); the service runs it again, and the citizen gets the answer, not a 503.
        visit = await queue.start_visit(KTP, NIB)
        ticket_id = visit["tickets"][0]["id"]
        async with queue.engine.connect() as other:
            await other.execute(
                text("SELECT 1 FROM visits WHERE id = :id FOR UPDATE"), {"id": visit["visit_id"]}
            )
            cancel = asyncio.create_task(queue.client.post(f"/v1/public/tickets/{ticket_id}/cancel"))
            await until_a_lock_is_awaited(queue.engine)
            # Granted once the cancel's transaction is rolled back (this side is not the victim).
            await other.execute(text("SELECT 1 FROM tickets WHERE id = :id FOR UPDATE"), {"id": ticket_id})
            await other.rollback()
        response = await cancel
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "cancelled"
        assert [r.getMessage() for r in caplog.records if r.name == "mpp.kit.db"] == [
            "db.transaction.conflict_retried"
        ]
        # The rolled-back attempt left no event behind.
        cancelled = [e for e in await queue.events() if e.event_type == "TicketCancelled"]
        assert [e.payload["ticket_id"] for e in cancelled] == [ticket_id]


class TestBatchesTakeVisitsInOrder:
    async def test_two_transactions_ending_the_same_two_visits_in_opposite_orders_do_not_deadlock(
        self, queue: QueueApi
    ) -> None:
        # Visits V and W, each with a KTP and an NIB ticket. One transaction ends V's KTP ticket, then
        # W's NIB ticket; the other W's KTP ticket, then V's NIB ticket: each would hold one visit and
        # wait for the other's. Both take their visits first, in id order, as a batch of the cycle does.
        svc = queue.app.state.queue
        v, w = await queue.start_visit(KTP, NIB), await queue.start_visit(KTP, NIB)

        def cancels(*tickets: dict[str, Any]) -> list[ActOnTicket]:
            return [
                ActOnTicket(
                    t["id"], "cancel", actor="citizen", correlation_id="c", cancelled_by=CancelledBy.CITIZEN
                )
                for t in tickets
            ]

        first, second = cancels(v["tickets"][0], w["tickets"][1]), cancels(w["tickets"][0], v["tickets"][1])

        async def run(cmds: list[ActOnTicket], uow: Any) -> None:
            for cmd in cmds:
                await HANDLERS[ActOnTicket](cmd, uow, svc.ports)

        async def other() -> None:
            async with svc.uow(lean=True) as uow:
                await lock_visits_first(second, uow)
                await run(second, uow)
                await uow.commit()

        async with svc.uow(lean=True) as uow:
            await lock_visits_first(first, uow)
            await run(first[:1], uow)
            racing = asyncio.create_task(other())
            await until_a_lock_is_awaited(queue.engine)
            await run(first[1:], uow)
            await uow.commit()
        await racing  # no deadlock: it waited for the first transaction's visits, then ran

        ended = [e.payload["visit_id"] for e in await queue.events() if e.event_type == "VisitEnded"]
        assert sorted(ended) == sorted([v["visit_id"], w["visit_id"]])
