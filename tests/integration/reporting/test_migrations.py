"""The Alembic history builds exactly the schema the reporting read models declare, on PostgreSQL and
SQLite."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection

from mpp.kit.db import create_engine
from mpp.kit.migrations import downgrade, upgrade
from mpp.reporting.app import MIGRATIONS
from mpp.reporting.persistence.tables import (
    consumer_offsets,
    daily_counts,
    duration_histogram,
    inbox,
    late_applications,
    metadata,
    metric_facts,
    metric_hourly,
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


async def _write_layout(url: str) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The collation of each code column of the metric read models (PostgreSQL), and each roll-up's
    index definitions."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            columns = await conn.execute(
                text(
                    "SELECT table_name, coalesce(collation_name, 'default') FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type = 'character varying' "
                    "AND (table_name LIKE 'metric_%' OR table_name LIKE 'duration_histogram%')"
                )
            )
            collations: dict[str, set[str]] = {}
            for table, collation in columns.all():
                collations.setdefault(table, set()).add(collation)
            indexes: dict[str, list[str]] = {}
            for table in _REKEYED:
                found = await conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE tablename = :t ORDER BY indexname"),
                    {"t": table},
                )
                indexes[table] = [str(r[0]).split(" USING ", 1)[1] for r in found.all()]
    finally:
        await engine.dispose()
    return collations, indexes


_REKEYED = (
    "metric_facts_monthly",
    "metric_facts_national_daily",
    "duration_histogram_monthly",
    "duration_histogram_national_daily",
)


async def test_the_write_costs_migration_collates_codes_bytewise_and_drops_the_covering_indexes(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """After 0008 every code column of the metric read models compares bytewise, and the roll-ups that
    pages read by site or by day keep one B-tree, their key led that way and holding the value (the
    monthly ones a block-range index on the month too); going
    back to 0007 restores the locale's collation and the covering indexes."""
    url = await fresh_database()
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS, "0008")
    finally:
        await engine.dispose()
    collations, indexes = await _write_layout(url)
    assert len(collations) == 12
    assert all(found == {"C"} for found in collations.values()), collations
    assert {t: set(found) for t, found in indexes.items()} == {
        "metric_facts_monthly": {
            "btree (site, month, agency, service_type, measure) INCLUDE (value)",
            "brin (month)",
        },
        "metric_facts_national_daily": {"btree (day, measure, agency, service_type) INCLUDE (value)"},
        "duration_histogram_monthly": {
            "btree (site, month, agency, service_type, kind, bucket) INCLUDE (count)",
            "brin (month)",
        },
        "duration_histogram_national_daily": {
            "btree (kind, day, agency, service_type, bucket) INCLUDE (count)"
        },
    }

    engine = create_engine(url)
    try:
        await downgrade(engine, MIGRATIONS, "0007")
    finally:
        await engine.dispose()
    collations, indexes = await _write_layout(url)
    assert all(found == {"default"} for found in collations.values()), collations
    assert set(indexes["metric_facts_monthly"]) == {
        "btree (site, month) INCLUDE (agency, service_type, measure, value)",
        "btree (month, site, agency, service_type, measure)",
    }
    assert set(indexes["duration_histogram_national_daily"]) == {
        "btree (kind, day) INCLUDE (agency, service_type, bucket, count)",
        "btree (day, agency, service_type, kind, bucket)",
    }


# Rows of the facts before 0009 (day, site, agency, service type, measure, value): a pair, a pair of
# another key and of an SKM element, a measure of no pair, and a second measure without its first.
_BEFORE_PAIRS = [
    (date(2026, 3, 2), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "waiting_count", 3),
    (date(2026, 3, 2), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "waiting_seconds_sum", 1840),
    (date(2026, 3, 2), "mpp-uji", "dpmptsp", "dpmptsp.nib", "waiting_count", 2),
    (date(2026, 3, 2), "mpp-uji", "dpmptsp", "dpmptsp.nib", "waiting_seconds_sum", 75),
    (date(2026, 3, 3), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "skm_u4_answers", 5),
    (date(2026, 3, 3), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "skm_u4_sum", 17),
    (date(2026, 3, 3), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "tickets_issued", 9),
    (date(2026, 3, 4), "mpp-uji", "polres", "", "complaints_anonymous", 1),
]
# The same rows after it (day, site, agency, service type, measure, value, paired).
_AFTER_PAIRS = {
    (date(2026, 3, 2), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "waiting_count", 3, 1840),
    (date(2026, 3, 2), "mpp-uji", "dpmptsp", "dpmptsp.nib", "waiting_count", 2, 75),
    (date(2026, 3, 3), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "skm_u4_answers", 5, 17),
    (date(2026, 3, 3), "mpp-uji", "dpmptsp", "dpmptsp.pbg", "tickets_issued", 9, 0),
    (date(2026, 3, 4), "mpp-uji", "polres", "", "complaints_received", 0, 1),
}


async def _fact_rows(url: str, *, paired: bool) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """The rows of ``metric_facts`` and of ``metric_facts_national_daily`` (without the site)."""
    engine = create_engine(url)
    values = "value, paired" if paired else "value"
    try:
        async with engine.connect() as conn:
            daily = await conn.execute(
                text(f"SELECT day, site, agency, service_type, measure, {values} FROM metric_facts")
            )
            national = await conn.execute(
                text(f"SELECT day, agency, service_type, measure, {values} FROM metric_facts_national_daily")
            )
            # SQLite gives days as text here (no column types in a textual query).
            return (
                {(date.fromisoformat(str(r[0])), *r[1:]) for r in daily.all()},
                {(date.fromisoformat(str(r[0])), *r[1:]) for r in national.all()},
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_the_paired_measures_migration_moves_seconds_into_their_firsts_rows_and_back(
    backend: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """0009 moves the second measure of each pair into the ``paired`` column of its first's row (a
    second without its first gets a first of 0) in the daily facts and the roll-ups; going back to 0008
    gives every second its row again and leaves the rows as they were."""
    url = await fresh_database() if backend == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS, "0008")
        async with engine.begin() as conn:
            for day, site, agency, st, measure, value in _BEFORE_PAIRS:
                row = {"day": day, "agency": agency, "service_type": st, "measure": measure, "value": value}
                await conn.execute(
                    text(
                        "INSERT INTO metric_facts (day, site, agency, service_type, measure, value) "
                        "VALUES (:day, :site, :agency, :service_type, :measure, :value)"
                    ),
                    {**row, "site": site},
                )
                await conn.execute(
                    text(
                        "INSERT INTO metric_facts_national_daily (day, agency, service_type, measure, value) "
                        "VALUES (:day, :agency, :service_type, :measure, :value)"
                    ),
                    row,
                )
        await upgrade(engine, MIGRATIONS, "0009")
    finally:
        await engine.dispose()
    daily, national = await _fact_rows(url, paired=True)
    assert daily == _AFTER_PAIRS
    assert national == {(day, a, st, m, v, p) for day, _site, a, st, m, v, p in _AFTER_PAIRS}
    if backend == "postgresql":
        _collations, indexes = await _write_layout(url)
        assert "btree (day, measure, agency, service_type) INCLUDE (value, paired)" in set(
            indexes["metric_facts_national_daily"]
        )

    engine = create_engine(url)
    try:
        await downgrade(engine, MIGRATIONS, "0008")
    finally:
        await engine.dispose()
    daily, national = await _fact_rows(url, paired=False)
    assert daily == set(_BEFORE_PAIRS)
    assert national == {(day, a, st, m, v) for day, _site, a, st, m, v in _BEFORE_PAIRS}
    if backend == "postgresql":
        _collations, indexes = await _write_layout(url)
        assert "btree (day, measure, agency, service_type) INCLUDE (value)" in set(
            indexes["metric_facts_national_daily"]
        )


async def _fillfactors(url: str) -> dict[str, list[str] | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class WHERE relkind = 'r' "
                    "AND relname IN ('metric_facts', 'metric_hourly', 'duration_histogram', 'inbox')"
                )
            )
            return {name: options for name, options in rows.all()}
    finally:
        await engine.dispose()


async def test_the_room_for_updates_migration_leaves_room_on_the_daily_read_models_pages(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """After 0013 the daily read models (whose rows later batches add to) fill their pages to 70%, as
    their table definitions declare; other tables are untouched; going back to 0012 fills them again."""
    url = await fresh_database()
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS, "0013")
    finally:
        await engine.dispose()
    room = ["fillfactor=70"]
    assert await _fillfactors(url) == {
        "metric_facts": room,
        "metric_hourly": room,
        "duration_histogram": room,
        "inbox": None,
    }
    for table in (metric_facts, metric_hourly, duration_histogram):
        assert table.dialect_options["postgresql"]["with"] == {"fillfactor": 70}

    engine = create_engine(url)
    try:
        await downgrade(engine, MIGRATIONS, "0012")
    finally:
        await engine.dispose()
    assert set((await _fillfactors(url)).values()) == {None}
