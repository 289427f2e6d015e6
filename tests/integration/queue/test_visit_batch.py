"""Group commit of kiosk visits on PostgreSQL: concurrent visits written in one transaction each get their
own answer and idempotency record, ticket numbers stay unique and gap-free per prefix, and a visit that
fails does not fail the others of its batch."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from mpp.queue.persistence.tables import idempotency_keys, ticket_sequences, tickets, visits
from tests.integration.queue.harness import KK, KTP, NIB, SITE, QueueApi, kiosk, running_queue

pytestmark = pytest.mark.integration

ASKED = [(KTP,), (KK,), (KTP, NIB), (NIB, KK), (KK, KTP, NIB)]


@pytest.fixture
async def batching(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[QueueApi]:
    # A long wait, so that visits sent together are written together even on a busy machine.
    async with running_queue(await fresh_database(), pool_size=20, visit_batch_wait_ms=40) as api:
        yield api


async def post_visit(api: QueueApi, service_types: tuple[str, ...], key: str | None) -> httpx.Response:
    headers = kiosk() if key is None else {**kiosk(), "Idempotency-Key": key}
    return await api.client.post("/v1/visits", json={"service_types": list(service_types)}, headers=headers)


async def stored_tickets(api: QueueApi) -> list[Any]:
    async with api.engine.connect() as conn:
        return list((await conn.execute(select(tickets))).mappings().all())


def numbers_by_prefix(rows: list[Any]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        seqs[row["prefix"]].append(row["seq"])
    return {prefix: sorted(v) for prefix, v in seqs.items()}


class TestVisitBatch:
    async def test_visits_sent_together_get_their_own_answers_and_gap_free_numbers(
        self, batching: QueueApi
    ) -> None:
        asked = [ASKED[i % len(ASKED)] for i in range(40)]
        responses = await asyncio.gather(
            *(
                post_visit(batching, types, f"batch-key-{i:04d}" if i % 4 else None)
                for i, types in enumerate(asked)
            )
        )
        assert [r.status_code for r in responses] == [201] * len(asked)
        assert batching.app.state.queue.visit_batcher.batches >= 1
        bodies = [r.json() for r in responses]
        # Each answer is its own visit, with the tickets asked for, in the order asked.
        assert len({b["visit_id"] for b in bodies}) == len(asked)
        for body, types in zip(bodies, asked, strict=True):
            assert [t["service_type"] for t in body["tickets"]] == list(types)
            assert {t["visit_id"] for t in body["tickets"]} == {body["visit_id"]}
        rows = await stored_tickets(batching)
        assert len(rows) == sum(len(types) for types in asked)
        for prefix, seqs in numbers_by_prefix(rows).items():
            assert seqs == list(range(1, len(seqs) + 1)), prefix
        by_id = {row["id"]: row for row in rows}
        for body in bodies:
            for ticket in body["tickets"]:
                assert by_id[ticket["id"]]["number"] == ticket["number"]
        # One VisitStarted and one TicketIssued per ticket in the outbox, under each visit's key.
        for body in bodies[:5]:
            written = await batching.event_types(body["visit_id"])
            assert written.count("VisitStarted") == 1
            assert written.count("TicketIssued") == len(body["tickets"])
        # Each keyed request has its own record: sending it again replays the same answer.
        for i in (1, 2, 3, 5):
            again = await post_visit(batching, asked[i], f"batch-key-{i:04d}")
            assert again.status_code == 201
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.json() == bodies[i]
        async with batching.engine.connect() as conn:
            records = (await conn.execute(select(func.count()).select_from(idempotency_keys))).scalar_one()
            started = (await conn.execute(select(func.count()).select_from(visits))).scalar_one()
        assert records == sum(1 for i in range(len(asked)) if i % 4)
        assert started == len(asked)

    async def test_a_failing_visit_does_not_fail_the_others(self, batching: QueueApi) -> None:
        # Prefix C (NIB) has used up its numbers today: visits asking for it fail, the others are written.
        day = (
            batching.clock.now()
            .astimezone(batching.app.state.queue.ports.catalogue.site_zone(SITE))
            .date()
            .isoformat()
        )
        async with batching.engine.begin() as conn:
            await conn.execute(insert(ticket_sequences).values(site=SITE, day=day, prefix="C", last=9999))
        asked: list[tuple[str, ...]] = [(KTP,), (NIB,), (KK,), ("unknown.service",), (KTP,), (KK, NIB), (KK,)]
        responses = await asyncio.gather(
            *(post_visit(batching, types, f"fail-key-{i:04d}") for i, types in enumerate(asked))
        )
        statuses = [r.status_code for r in responses]
        assert statuses == [201, 409, 201, 422, 201, 409, 201]
        rows = await stored_tickets(batching)
        assert numbers_by_prefix(rows) == {"A": [1, 2], "B": [1, 2]}
        async with batching.engine.connect() as conn:
            started = (await conn.execute(select(func.count()).select_from(visits))).scalar_one()
        assert started == 4

    async def test_one_key_sent_twice_at_once_makes_one_visit(self, batching: QueueApi) -> None:
        first, second = await asyncio.gather(
            post_visit(batching, (KTP,), "same-key-0001"), post_visit(batching, (KTP,), "same-key-0001")
        )
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert {first.headers.get("Idempotent-Replayed"), second.headers.get("Idempotent-Replayed")} == {
            None,
            "true",
        }
        assert len(await stored_tickets(batching)) == 1

    async def test_without_batching_visits_are_written_one_by_one(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        async with running_queue(await fresh_database(), visit_batch_max=1) as api:
            assert api.app.state.queue.visit_batcher is None
            responses = await asyncio.gather(*(post_visit(api, (KK,), None) for _ in range(10)))
            assert [r.status_code for r in responses] == [201] * 10
            assert numbers_by_prefix(await stored_tickets(api)) == {"B": list(range(1, 11))}


async def test_visits_sent_together_on_sqlite_are_written_together(tmp_path: Path) -> None:
    async with running_queue(f"sqlite:///{tmp_path / 'queue.db'}", visit_batch_wait_ms=40) as api:
        asked = [ASKED[i % len(ASKED)] for i in range(15)]
        responses = await asyncio.gather(
            *(post_visit(api, types, f"lite-key-{i:04d}") for i, types in enumerate(asked))
        )
        assert [r.status_code for r in responses] == [201] * len(asked)
        assert api.app.state.queue.visit_batcher.batches >= 1
        rows = await stored_tickets(api)
        assert len(rows) == sum(len(types) for types in asked)
        for prefix, seqs in numbers_by_prefix(rows).items():
            assert seqs == list(range(1, len(seqs) + 1)), prefix
        again = await post_visit(api, asked[3], "lite-key-0003")
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json() == responses[3].json()
