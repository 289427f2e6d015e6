"""The embedded default: the same API on a SQLite file in one process, concurrent requests included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.queue.harness import KTP, officer, running_queue

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
