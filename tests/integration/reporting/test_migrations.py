"""The Alembic history builds exactly the schema the reporting read models declare, on PostgreSQL and
SQLite."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from mpp.kit.db import create_engine
from mpp.kit.migrations import upgrade
from mpp.reporting.app import MIGRATIONS
from mpp.reporting.persistence.tables import (
    consumer_offsets,
    daily_counts,
    inbox,
    late_applications,
    metadata,
    metric_facts,
)
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


async def test_the_metric_migration_replays_the_log_into_every_read_model(tmp_path: Path) -> None:
    """After 0002 the projector has no stored offsets, no remembered event ids and no counts: it starts
    again from the beginning of every topic and fills all read models from the same events."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    try:
        await upgrade(engine, MIGRATIONS, "0001")
        async with engine.begin() as conn:
            await conn.execute(
                insert(daily_counts).values(
                    day=date(2026, 3, 2),
                    site="mpp-kota-sukamaju",
                    agency="dpmptsp",
                    service_type="dpmptsp.pbg",
                    metric="applications_submitted",
                    count=5,
                )
            )
            await conn.execute(
                insert(consumer_offsets).values(
                    consumer="mpp.reporting.projector",
                    topic="mpp.licensing.applications",
                    partition=0,
                    offset=41,
                )
            )
            await conn.execute(
                insert(inbox).values(
                    consumer="mpp.reporting.projector", event_id="e-1", processed_at=datetime.now(UTC)
                )
            )

        await upgrade(engine, MIGRATIONS)

        async with engine.connect() as conn:
            counts = [
                (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (daily_counts, consumer_offsets, inbox, metric_facts)
            ]
        assert counts == [0, 0, 0, 0]
    finally:
        await engine.dispose()


async def test_the_late_applications_migration_replays_the_log_into_every_read_model(tmp_path: Path) -> None:
    """After 0003 the projector starts again from the beginning of every topic: the late applications
    are filled from finishing events already consumed, and no other read model counts an event twice."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    try:
        await upgrade(engine, MIGRATIONS, "0002")
        async with engine.begin() as conn:
            await conn.execute(
                insert(metric_facts).values(
                    day=date(2026, 3, 2),
                    site="mpp-kota-sukamaju",
                    agency="dpmptsp",
                    service_type="dpmptsp.pbg",
                    measure="applications_finished",
                    value=5,
                )
            )
            await conn.execute(
                insert(consumer_offsets).values(
                    consumer="mpp.reporting.projector",
                    topic="mpp.licensing.applications",
                    partition=0,
                    offset=41,
                )
            )

        await upgrade(engine, MIGRATIONS)

        async with engine.connect() as conn:
            counts = [
                (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (metric_facts, consumer_offsets, late_applications)
            ]
        assert counts == [0, 0, 0]
    finally:
        await engine.dispose()
