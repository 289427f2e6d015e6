"""Replicas that start together apply a service's migrations once, one after the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from mpp.kit.db import create_engine
from mpp.kit.migrations import upgrade

pytestmark = pytest.mark.integration

LICENSING_MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "licensing" / "migrations"


class TestConcurrentMigrations:
    async def test_four_replicas_migrating_at_once_all_succeed(
        self, fresh_database: Callable[[], Awaitable[str]]
    ) -> None:
        url = await fresh_database()
        engines = [create_engine(url) for _ in range(4)]
        try:
            await asyncio.gather(*(upgrade(engine, LICENSING_MIGRATIONS) for engine in engines))
            async with engines[0].connect() as conn:
                versions = (
                    (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
                )
                tables = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'applications'"
                        )
                    )
                ).scalar_one()
        finally:
            for engine in engines:
                await engine.dispose()
        assert len(versions) == 1
        assert tables == 1
