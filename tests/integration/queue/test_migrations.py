"""The Alembic history builds exactly the schema the queue's tables declare."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

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
