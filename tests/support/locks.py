"""Waiting for a test's own transactions to meet on PostgreSQL's row locks."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def until_a_lock_is_awaited(engine: AsyncEngine) -> None:
    """Until some session of the test's database waits for a row lock (five seconds at most)."""
    async with engine.connect() as conn:
        for _ in range(500):
            if await conn.scalar(_WAITING):
                return
            await asyncio.sleep(0.01)
    raise AssertionError("nobody waited for a lock")
