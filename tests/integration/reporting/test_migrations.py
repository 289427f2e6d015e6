"""The Alembic history builds exactly the schema the reporting read models declare, on PostgreSQL and
SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from mpp.reporting.persistence.tables import metadata
from tests.integration.reporting.harness import ReportingApi, running_reporting

pytestmark = pytest.mark.integration


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(context, metadata)
        if d[0] != "remove_table" or d[1].name != "alembic_version"
    ]


async def _compare(api: ReportingApi) -> list[Any]:
    engine = api.app.state.reporting.runtime.engine
    async with engine.connect() as conn:
        differences: list[Any] = await conn.run_sync(_differences)
    return differences


async def test_migrations_match_the_table_definitions_on_postgresql(reporting: ReportingApi) -> None:
    assert await _compare(reporting) == []


async def test_migrations_match_the_table_definitions_on_sqlite(tmp_path: Path) -> None:
    async with running_reporting(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}") as api:
        assert await _compare(api) == []
