"""Group commit of the counters' cycle on PostgreSQL: call-next, start and complete requests sent together
are committed in shared transactions, each request still gets its own answer, its own correlation id and
trace on its events, and a request that fails does not fail the others of its batch."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from mpp.kit.outbox import decode_headers
from mpp.queue.api.cycle_batch import CycleBatcher
from mpp.queue.persistence.tables import counters, outbox, tickets
from tests.integration.queue.harness import KK, QueueApi, officer, running_queue
from tests.integration.queue.test_concurrency import COUNTERS, with_extra_counters

pytestmark = pytest.mark.integration


@pytest.fixture
async def batching(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[QueueApi]:
    # One writer: requests that arrive while a batch is written always form the next batch.
    async with running_queue(await fresh_database(), pool_size=20, cycle_batch_writers=1) as api:
        yield api


def batcher_of(api: QueueApi) -> CycleBatcher:
    batcher = api.app.state.queue.cycle_batcher
    assert isinstance(batcher, CycleBatcher)
    return batcher


def traced(headers: dict[str, str], correlation_id: str) -> tuple[dict[str, str], str]:
    trace_id = secrets.token_hex(16)
    return (
        {
            **headers,
            "X-Correlation-Id": correlation_id,
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        },
        trace_id,
    )


async def outbox_headers(api: QueueApi, event_type: str) -> list[dict[str, str]]:
    async with api.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.headers).order_by(outbox.c.seq))).scalars().all()
    named = [{k: v.decode() for k, v in decode_headers(h)} for h in rows]
    return [h for h in named if h["ce_type"] == event_type]


async def open_all(api: QueueApi) -> None:
    with_extra_counters(api)
    for code in COUNTERS:
        await api.open_counter(code, officer(subject=f"officer-{code}"))


class TestCycleBatch:
    async def test_counters_calling_together_share_transactions_and_keep_their_own_answers(
        self, batching: QueueApi
    ) -> None:
        issued = [(await batching.ticket(KK))["id"] for _ in range(len(COUNTERS) * 3)]
        await open_all(batching)
        traces: dict[str, str] = {}
        called: list[tuple[str, str]] = []

        async def cycle(code: str, round_: int) -> None:
            corr = f"corr-{code}-{round_}"
            headers, traces[corr] = traced(officer(subject=f"officer-{code}"), corr)
            response = await batching.call_next(code, headers)
            assert response.status_code == 200, response.text
            ticket: dict[str, Any] = response.json()["ticket"]
            assert ticket["counter"] == code
            called.append((ticket["id"], corr))
            for action in ("start", "complete"):
                done = await batching.act(ticket["id"], action, headers)
                assert done.status_code == 200, done.text
                assert done.json()["state"] == ("serving" if action == "start" else "completed")

        for round_ in range(3):
            await asyncio.gather(*(cycle(code, round_) for code in COUNTERS))

        batcher = batcher_of(batching)
        assert batcher.batches >= 3
        assert batcher.retried == 0
        # Every ticket called once, in call order across the whole run (the batch decides as one by one).
        assert sorted(t for t, _ in called) == sorted(issued)
        async with batching.engine.connect() as conn:
            states = set((await conn.execute(select(tickets.c.state))).scalars().all())
            served = (await conn.execute(select(counters.c.tickets_served))).scalars().all()
        assert states == {"completed"}
        assert sum(served) == len(issued)
        # Each TicketCalled carries its own request's correlation id and trace, not the batch's.
        by_ticket = dict(called)
        headers = await outbox_headers(batching, "TicketCalled")
        assert len(headers) == len(issued)
        for h in headers:
            ticket_id = next(t for t, corr in called if corr == h["ce_correlationid"])
            assert by_ticket[ticket_id] == h["ce_correlationid"]
            assert h["traceparent"].split("-")[1] == traces[h["ce_correlationid"]]

    async def test_a_failing_request_fails_alone_and_the_others_of_its_batch_are_written(
        self, batching: QueueApi
    ) -> None:
        issued = [(await batching.ticket(KK))["id"] for _ in range(len(COUNTERS) + 1)]
        await open_all(batching)
        calls = await asyncio.gather(
            *(batching.call_next(code, officer(subject=f"officer-{code}")) for code in COUNTERS)
        )
        called = {r.json()["ticket"]["id"]: code for r, code in zip(calls, COUNTERS, strict=True)}
        never_called = next(t for t in issued if t not in called)
        batcher = batcher_of(batching)
        retried = batcher.retried

        # Every counter starts its ticket; one officer also tries to start a ticket nobody called.
        results = await asyncio.gather(
            batching.act(never_called, "start", officer(subject="officer-x")),
            *(batching.act(t, "start", officer(subject=f"officer-{code}")) for t, code in called.items()),
        )

        assert results[0].status_code == 409
        assert results[0].json()["error"]["code"] == "invalid_state"
        assert [r.status_code for r in results[1:]] == [200] * len(called)
        assert batcher.retried > retried
        async with batching.engine.connect() as conn:
            state = dict((await conn.execute(select(tickets.c.id, tickets.c.state))).all())
        assert state[never_called] == "waiting"
        assert all(state[t] == "serving" for t in called)
        assert len(await outbox_headers(batching, "ServiceStarted")) == len(called)

    async def test_one_per_transaction_when_switched_off(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        async with running_queue(await fresh_database(), cycle_batch_max=1) as api:
            assert api.app.state.queue.cycle_batcher is None
            await api.ticket(KK)
            with_extra_counters(api)
            await api.open_counter(COUNTERS[0], officer(subject="officer-a"))
            response = await api.call_next(COUNTERS[0], officer(subject="officer-a"))
            assert response.status_code == 200
            assert response.json()["ticket"]["state"] == "called"
