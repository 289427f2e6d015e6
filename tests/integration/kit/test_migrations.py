"""Replicas that start together apply a service's migrations once, one after the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from mpp.kit.db import create_engine
from mpp.kit.migrations import downgrade, upgrade

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


SERVICES = Path(__file__).resolve().parents[3] / "services"
# Each service's migration that turns its inbox's event ids into uuid, and the one before it.
INBOX_UUID = {
    "identity": ("0004", "0003"),
    "licensing": ("0005", "0004"),
    "notification": ("0004", "0003"),
    "queue": ("0009", "0008"),
    "reporting": ("0014", "0013"),
}
_EVENT_ID = "0190c0de-55aa-7abc-8def-0123456789ab"


async def _inbox_ids(url: str) -> tuple[str, list[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            kind = (
                await conn.execute(
                    text(
                        "SELECT data_type FROM information_schema.columns "
                        "WHERE table_name = 'inbox' AND column_name = 'event_id'"
                    )
                )
            ).scalar_one()
            ids = (await conn.execute(text("SELECT CAST(event_id AS text) FROM inbox"))).scalars().all()
    finally:
        await engine.dispose()
    return str(kind), list(ids)


@pytest.mark.parametrize("service", sorted(INBOX_UUID))
async def test_the_inbox_keeps_its_event_ids_as_uuid_and_back(
    service: str, fresh_database: Callable[[], Awaitable[str]]
) -> None:
    """An id claimed before the migration is the same id after it, and after going back."""
    uuid_revision, before = INBOX_UUID[service]
    migrations = SERVICES / service / "migrations"
    url = await fresh_database()
    engine = create_engine(url)
    try:
        await upgrade(engine, migrations, before)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('g', :id, now())"),
                {"id": _EVENT_ID},
            )
        await upgrade(engine, migrations, uuid_revision)
        assert await _inbox_ids(url) == ("uuid", [_EVENT_ID])
        await downgrade(engine, migrations, before)
        assert await _inbox_ids(url) == ("character varying", [_EVENT_ID])
    finally:
        await engine.dispose()
