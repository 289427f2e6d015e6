"""The Alembic history builds exactly the schema the queue's tables declare."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from mpp.kit.migrations import downgrade, upgrade
from mpp.queue.app import MIGRATIONS
from mpp.queue.persistence.tables import metadata
from tests.integration.queue.harness import QueueApi

pytestmark = pytest.mark.integration


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(context, metadata)
        if d[0] != "remove_table" or d[1].name != "alembic_version"
    ]


async def test_migrations_match_the_table_definitions(queue: QueueApi) -> None:
    async with queue.engine.connect() as conn:
        differences = await conn.run_sync(_differences)

    assert differences == []


async def _ticket_indexes_and_options(queue: QueueApi) -> tuple[set[str], list[str]]:
    async with queue.engine.connect() as conn:
        indexes = (
            await conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'tickets'")
        ).scalars()
        options = (
            await conn.exec_driver_sql("SELECT reloptions FROM pg_class WHERE relname = 'tickets'")
        ).scalar_one()
    return set(indexes), sorted(options or [])


async def test_the_waiting_by_type_migration_goes_back_and_forth(queue: QueueApi) -> None:
    indexes, options = await _ticket_indexes_and_options(queue)
    assert {"ix_tickets_waiting_type", "ix_tickets_waiting_rank"} <= indexes
    assert not {"ix_tickets_waiting", "ix_tickets_counter"} & indexes
    assert "autovacuum_vacuum_scale_factor=0" in options

    await downgrade(queue.engine, MIGRATIONS, "0007")
    indexes, options = await _ticket_indexes_and_options(queue)
    assert {"ix_tickets_waiting", "ix_tickets_counter"} <= indexes
    assert "ix_tickets_waiting_type" not in indexes
    assert options == []

    await upgrade(queue.engine, MIGRATIONS)
    async with queue.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
