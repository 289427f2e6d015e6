"""The roll-ups (per month x site, per month x site without agency or service type, and every site
summed per day and per month) answer exactly what the daily read models answer: for
random date ranges, periods, groupings and scopes, every metric's figures are identical whichever tables
are read, and whether the metrics are read one by one or together. The roll-ups themselves equal the sums
of their days, both as the projector keeps them and as the migration fills them from existing daily
rows."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.kit.consumer import ReceivedEvent
from mpp.kit.db import create_engine, session_factory, statement_hook
from mpp.kit.migrations import downgrade, upgrade
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import MIGRATIONS
from mpp.reporting.domain.facts import LateApplication
from mpp.reporting.domain.metrics import METRICS
from mpp.reporting.domain.periods import Period
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.figures import GroupBy, compute, compute_many
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.repository import Scope
from mpp.reporting.persistence.tables import (
    BLOCK_BUCKETS,
    duration_histogram_site_blocks,
    late_applications,
    metric_facts,
    metric_facts_monthly,
    metric_facts_site_monthly,
    rollups_pending,
)
from tests.integration.reporting.harness import ReportingApi, running_reporting
from tests.integration.reporting.rollup_checks import ROLLUPS, bucket_rows, rollup_differences
from tests.unit.reporting.builders import SiteInfo, catalogue_for, generate, sites_for

pytestmark = pytest.mark.integration

# Sparse days over four months and a year end, with month edges on both sides.
DAYS = [
    date(2025, 12, 30),
    date(2025, 12, 31),
    date(2026, 1, 1),
    date(2026, 1, 15),
    date(2026, 1, 31),
    date(2026, 2, 1),
    date(2026, 2, 17),
    date(2026, 2, 28),
    date(2026, 3, 1),
    date(2026, 3, 20),
    date(2026, 4, 30),
]
FIRST, LAST = date(2025, 12, 25), date(2026, 5, 5)
GROUPS = (None, GroupBy.SITE, GroupBy.PROVINCE, GroupBy.AGENCY, GroupBy.SERVICE_TYPE, GroupBy.WEEKDAY)


async def _project(api: ReportingApi, sites: tuple[SiteInfo, ...], seed: int) -> None:
    zones = {s.code: s.tz for s in sites}

    def site_tz(site: str) -> ZoneInfo:
        return zones[site]

    catalogue = api.app.state.reporting.geography.catalogue
    envelopes = generate(seed, sites, DAYS, 8, catalogue).envelopes
    handler = projector(site_tz, catalogue_sla(catalogue, site_tz))
    for first in range(0, len(envelopes), 500):
        batch = [
            ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=first + i)
            for i, e in enumerate(envelopes[first : first + 500])
        ]
        async with api.sessions() as session, session.begin():
            await handler(session, batch)


def _random_bound(rng: random.Random) -> date:
    # Month edges are the interesting bounds: pick them often.
    day = FIRST + timedelta(days=rng.randrange((LAST - FIRST).days))
    match rng.randrange(4):
        case 0:
            return day.replace(day=1)
        case 1:
            return day.replace(day=1) - timedelta(days=1)
        case _:
            return day


def _random_scope(rng: random.Random, sites: tuple[SiteInfo, ...]) -> Scope:
    a: date | None = _random_bound(rng) if rng.random() < 0.85 else None
    b: date | None = _random_bound(rng) if rng.random() < 0.85 else None
    if a is not None and b is not None and a > b:
        a, b = b, a
    chosen: frozenset[str] | None = None
    if rng.random() < 0.3:
        chosen = frozenset(rng.sample([s.code for s in sites], rng.randint(1, 2)))
    agency = rng.choice(["dpmptsp", "disdukcapil"]) if rng.random() < 0.2 else None
    return Scope(start=a, end=b, sites=chosen, agency=agency)


async def test_figures_are_identical_whichever_table_answers(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    sites = sites_for("rollup")
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites).model_dump_json())
    async with running_reporting(await fresh_database(), catalogue_file=catalogue_file) as api:
        await _project(api, sites, seed=23)
        assert await rollup_differences(api.sessions) == []
        geography = api.app.state.reporting.geography
        rng = random.Random(5)
        compared = nonempty = 0
        async with api.sessions() as session:
            for _ in range(60):
                scope = _random_scope(rng, sites)
                period = rng.choice([Period.ALL, Period.MONTH, Period.QUARTER, Period.YEAR, Period.WEEK])
                group_by = rng.choice(GROUPS)
                for metric in rng.sample(METRICS, 4):
                    args: dict[str, Any] = {"period": period, "group_by": group_by}
                    daily = await compute(session, geography, metric, scope, **args, rollups=False)
                    rolled = await compute(session, geography, metric, scope, **args, rollups=True)
                    assert rolled == daily, (metric.id, scope, period, group_by)
                    compared += 1
                    nonempty += any(r["figures"] != rolled[0]["figures"] for r in rolled) or len(rolled) > 1
            # Every metric read together (one read of the facts and one of the histograms) gives each
            # metric's figures as read alone from the daily tables.
            for _ in range(12):
                scope = _random_scope(rng, sites)
                period = rng.choice([Period.ALL, Period.MONTH, Period.WEEK])
                group_by = rng.choice(GROUPS)
                together = await compute_many(
                    session, geography, METRICS, scope, period=period, group_by=group_by
                )
                for metric in METRICS:
                    alone = await compute(
                        session, geography, metric, scope, period=period, group_by=group_by, rollups=False
                    )
                    assert together[metric.id] == alone, (metric.id, scope, period, group_by)
        # The ranges do reach data: most comparisons hold more than one cell of figures.
        assert compared == 240
        assert nonempty > 100


def _has_table(conn: Connection, name: str) -> bool:
    return inspect(conn).has_table(name)


async def test_the_migration_fills_the_rollups_from_the_daily_rows(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """Daily rows projected before the roll-ups existed are rolled up by the migration that adds them."""
    sites = sites_for("migrate")
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites).model_dump_json())
    for url in (await fresh_database(), f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"):
        async with running_reporting(url, catalogue_file=catalogue_file) as api:
            await _project(api, sites, seed=31)
        plain = create_engine(url)
        try:
            # Back to the schema before the roll-ups, keeping the daily rows.
            await downgrade(plain, MIGRATIONS, "0004")
            async with plain.connect() as conn:
                for rollup, *_ in ROLLUPS:
                    assert not await conn.run_sync(_has_table, rollup.name)
            await upgrade(plain, MIGRATIONS)
        finally:
            await plain.dispose()
        async with running_reporting(url, catalogue_file=catalogue_file) as api:
            assert await rollup_differences(api.sessions) == []


async def test_upserts_keep_codes_with_quotes_commas_and_braces_exactly(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """The batch upserts send each column as one array literal: every character of a code survives."""
    odd = ['a"b', "c\\d", "e,f", "{g}", "", "h i", "NULL"]
    async with running_reporting(await fresh_database()) as api:
        rows: Counter[tuple[Any, ...]] = Counter(
            {
                (date(2026, 1, 1) + timedelta(days=i), code, code, code, f"m{i}"): i + 1
                for i, code in enumerate(odd)
            }
        )
        for _ in range(2):
            async with api.sessions() as session, session.begin():
                await repository._add(
                    session, metric_facts, ("day", "site", "agency", "service_type", "measure"), "value", rows
                )
        async with api.sessions() as session:
            stored = {
                (r.day, r.site, r.agency, r.service_type, r.measure): r.value
                for r in await session.execute(select(metric_facts))
            }
    assert stored == {key: 2 * n for key, n in rows.items()}


async def test_late_applications_keep_odd_references_unknown_due_days_and_their_first_row(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """Late applications go in as column arrays too: references keep every character, an unknown due
    day and days late stay unknown, and an application already recorded keeps its first row."""
    odd = ['lic-"1"', "lic\\2", "lic,3", "{lic-4}", "NULL", "lic 6"]
    first = [
        LateApplication(
            "mpp-uji",
            ref,
            "dpmptsp",
            "dpmptsp.nib",
            date(2026, 3, 5),
            None if i % 2 else date(2026, 3, 2),
            None if i % 2 else i,
        )
        for i, ref in enumerate(odd)
    ]
    again = [row._replace(finished_day=date(2026, 3, 9), days_late=99) for row in first]
    async with running_reporting(await fresh_database()) as api:
        for batch in (first, again, []):
            async with api.sessions() as session, session.begin():
                await repository.add_late(session, batch)
        async with api.sessions() as session:
            stored = sorted(LateApplication(*r) for r in await session.execute(select(late_applications)))
    assert stored == sorted(first)


# Ranges with whole months and edge days on both sides (across a year end), whole months only, edge days
# only (within a month), and every day held.
SITE_RANGES: tuple[tuple[date | None, date | None], ...] = (
    (date(2025, 12, 31), date(2026, 3, 1)),
    (date(2026, 1, 15), date(2026, 4, 30)),
    (date(2026, 2, 1), date(2026, 3, 31)),
    (date(2026, 2, 17), date(2026, 2, 28)),
    (None, None),
)
SITE_GROUPS = (None, GroupBy.SITE, GroupBy.KABKOTA, GroupBy.PROVINCE)


async def _fresh_world(
    run: str, backend: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> tuple[tuple[SiteInfo, ...], Path, str]:
    """A test's sites, their catalogue file and an empty database of ``backend``."""
    sites = sites_for(run)
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(catalogue_for(sites).model_dump_json())
    url = await fresh_database() if backend == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    return sites, catalogue_file, url


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_the_per_site_facts_rollup_gives_the_daily_figures_wherever_it_answers(
    backend: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """Figures by site, kab/kota or province, and of chosen sites, read whole months from
    ``metric_facts_site_monthly`` and ``duration_histogram_site_blocks`` (and the edge days from the daily
    tables) whenever no agency or service type is asked for, and every metric's figures, the waiting and
    service times' medians and P90s among them, are then those of the daily tables alone."""
    sites, catalogue_file, url = await _fresh_world("persite", backend, fresh_database, tmp_path)
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        await _project(api, sites, seed=41)
        assert await rollup_differences(api.sessions) == []
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        def sent(statement: str) -> None:  # the reads PostgreSQL answers come straight from the driver
            statements.append(statement)

        engine = api.app.state.reporting.runtime.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        statement_hook.append(sent)
        geography = api.app.state.reporting.geography
        served = cells = 0
        chosen = frozenset({sites[0].code, sites[2].code})
        try:
            async with api.sessions() as session:
                for start, end in SITE_RANGES:
                    whole_month = start != date(2026, 2, 17)
                    for sites_in, agency in ((None, None), (chosen, None), (None, "dpmptsp")):
                        scope = Scope(start=start, end=end, sites=sites_in, agency=agency)
                        for group_by in SITE_GROUPS:
                            for period in (Period.ALL, Period.QUARTER):
                                args: dict[str, Any] = {"period": period, "group_by": group_by}
                                statements.clear()
                                rolled = await compute_many(session, geography, METRICS, scope, **args)
                                read = any(metric_facts_site_monthly.name in s for s in statements)
                                blocks = any(duration_histogram_site_blocks.name in s for s in statements)
                                by_site = group_by is not None or sites_in is not None
                                assert read == (whole_month and by_site and agency is None), (scope, args)
                                assert blocks == read, (scope, args)
                                served += read
                                for metric in METRICS:
                                    daily = await compute(
                                        session, geography, metric, scope, **args, rollups=False
                                    )
                                    assert rolled[metric.id] == daily, (metric.id, scope, args)
                                    cells += sum(1 for row in daily if any(row["figures"].values()))
        finally:
            event.remove(engine, "before_cursor_execute", seen)
            statement_hook.remove(sent)
        # 4 ranges with whole months x (3 groupings by site, and the chosen sites under each of the 4)
        # x 2 periods.
        assert served == 4 * (3 + 4) * 2
        assert cells > 1000


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_the_site_facts_migration_fills_the_rollup_and_goes_back(
    backend: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """Facts projected before 0010 are summed into ``metric_facts_site_monthly`` by it, from the monthly
    roll-up, keyed by site and month and holding both values; going back to 0009 drops that table
    alone."""
    sites, catalogue_file, url = await _fresh_world("sitefacts", backend, fresh_database, tmp_path)
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        await _project(api, sites, seed=43)
    plain = create_engine(url)
    try:
        if backend == "postgresql":
            assert await _index_definitions(plain, metric_facts_site_monthly.name) == [
                "btree (site, month, measure) INCLUDE (value, paired)"
            ]
        await downgrade(plain, MIGRATIONS, "0009")
        async with plain.connect() as conn:
            assert not await conn.run_sync(_has_table, metric_facts_site_monthly.name)
            assert await conn.run_sync(_has_table, metric_facts_monthly.name)
        await upgrade(plain, MIGRATIONS)
    finally:
        await plain.dispose()
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        assert await rollup_differences(api.sessions) == []
        async with api.sessions() as session:
            rows = (
                await session.execute(select(func.count()).select_from(metric_facts_site_monthly))
            ).scalar()
        assert rows


async def _index_definitions(engine: AsyncEngine, table: str) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = :t ORDER BY indexname"), {"t": table}
        )
        return [str(r[0]).split(" USING ", 1)[1] for r in found.all()]


async def _empty_and_defer_rollups(api: ReportingApi) -> None:
    """The roll-ups as a rebuild leaves them: emptied, and marked pending."""
    async with api.sessions() as session, session.begin():
        for rollup, _src, _time, _keys, _value in ROLLUPS:
            await session.execute(rollup.delete())
        await repository.defer_rollups(session, datetime.now(UTC))


async def test_pending_rollups_are_filled_once_from_the_daily_tables_by_whoever_locks_first(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """Roll-ups left pending (a rebuild's, emptied) are filled from the daily read models by one
    transaction; a second one filling at the same moment waits for the first, then finds nothing to do,
    so nothing is counted twice. Going back to 0011 refuses while they are pending."""
    sites, catalogue_file, url = await _fresh_world("pending", "postgresql", fresh_database, tmp_path)
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        await _project(api, sites, seed=47)
        await _empty_and_defer_rollups(api)
        assert await rollup_differences(api.sessions) != []

        first = api.sessions()
        await first.begin()
        assert await repository.fill_pending_rollups(first)

        async def second() -> bool:
            async with api.sessions() as session, session.begin():
                return await repository.fill_pending_rollups(session)

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not racing.done()  # waiting for the first's row lock
        await first.commit()
        await first.close()
        assert await racing is False
        assert await rollup_differences(api.sessions) == []
        async with api.sessions() as session:
            assert not await repository.rollups_are_pending(session)

        async with api.sessions() as session, session.begin():
            await repository.defer_rollups(session, datetime.now(UTC))
    plain = create_engine(url)
    try:
        with pytest.raises(RuntimeError, match="has not filled the roll-ups yet"):
            await downgrade(plain, MIGRATIONS, "0011")
        async with plain.begin() as conn:
            await conn.execute(rollups_pending.delete())
        await downgrade(plain, MIGRATIONS, "0011")
        async with plain.connect() as conn:
            assert not await conn.run_sync(_has_table, rollups_pending.name)
        await upgrade(plain, MIGRATIONS)
    finally:
        await plain.dispose()


async def test_pending_rollups_filled_on_several_connections_equal_their_days_and_a_failure_keeps_the_mark(
    fresh_database: Callable[[], Awaitable[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The concurrent fill (end of a rebuild, service start) runs roll-ups on separate connections at
    once, each after what it is summed from; a fill that fails part-way leaves the mark, so figures keep
    coming from the daily read models and the next fill empties and fills every roll-up again. A second
    filler racing the first finds nothing to do."""
    sites, catalogue_file, url = await _fresh_world("concurrent", "postgresql", fresh_database, tmp_path)
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        await _project(api, sites, seed=53)
        await _empty_and_defer_rollups(api)

        real_fill = repository._fill_one
        running: set[str] = set()
        overlapping: list[set[str]] = []
        order: list[str] = []
        failures = [RuntimeError("the database went away")]

        async def watched(session: Any, rollup: Any, *args: Any) -> None:
            running.add(rollup.name)
            if len(running) > 1:
                overlapping.append(set(running))
            try:
                await asyncio.sleep(0.05)  # long enough for the other connection to start its own
                if rollup.name == "duration_histogram_national_monthly" and failures:
                    raise failures.pop()
                await real_fill(session, rollup, *args)
                order.append(rollup.name)
            finally:
                running.discard(rollup.name)

        monkeypatch.setattr(repository, "_fill_one", watched)
        with pytest.raises(ExceptionGroup):
            await repository.fill_pending_rollups_concurrently(api.sessions)
        async with api.sessions() as session:
            assert await repository.rollups_are_pending(session)  # the mark stayed

        order.append("retry")
        racing = asyncio.create_task(repository.fill_pending_rollups_concurrently(api.sessions))
        assert await repository.fill_pending_rollups_concurrently(api.sessions, connections=3) != await racing
        assert await rollup_differences(api.sessions) == []
        async with api.sessions() as session:
            assert not await repository.rollups_are_pending(session)
        assert overlapping, "no two roll-ups were filled at the same time"
        assert max(len(names) for names in overlapping) <= 3
        filled = order[order.index("retry") + 1 :]
        assert len(filled) == len(repository._FILLS)
        for rollup, source in repository._FILL_SOURCES:
            if source.name in filled:  # summed from a finer roll-up: filled after it
                assert filled.index(source.name) < filled.index(rollup.name)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_the_histogram_blocks_migration_fills_the_blocks_and_goes_back(
    backend: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """0011 packs the per-site histogram of 0007 (one row per bucket) into rows of 16 buckets keyed by
    site, month, kind and block; going back to 0010 unpacks them into one row per bucket, and each way the
    buckets equal the sums of their days."""
    sites, catalogue_file, url = await _fresh_world("blocks", backend, fresh_database, tmp_path)
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        await _project(api, sites, seed=47)
        before = await _bucket_rows_of(api)
    plain = create_engine(url)
    try:
        if backend == "postgresql":
            assert await _index_definitions(plain, duration_histogram_site_blocks.name) == [
                "btree (site, month, kind, block)"
            ]
        await downgrade(plain, MIGRATIONS, "0010")
        async with plain.connect() as conn:
            assert not await conn.run_sync(_has_table, duration_histogram_site_blocks.name)
            unpacked = {
                (str(r.month), r.site, r.kind, str(r.bucket)): int(r._mapping["count"])
                for r in await conn.execute(text("SELECT * FROM duration_histogram_site_monthly"))
            }
        if backend == "postgresql":
            assert await _index_definitions(plain, "duration_histogram_site_monthly") == [
                "btree (site, month, kind, bucket) INCLUDE (count)"
            ]
        await upgrade(plain, MIGRATIONS)
        async with plain.connect() as conn:
            assert not await conn.run_sync(_has_table, "duration_histogram_site_monthly")
    finally:
        await plain.dispose()
    assert unpacked == before
    # Buckets beyond the first block: the packing is exercised past the first 16 buckets.
    assert max(int(key[3]) for key in before) >= BLOCK_BUCKETS
    async with running_reporting(url, catalogue_file=catalogue_file) as api:
        assert await rollup_differences(api.sessions) == []
        assert await _bucket_rows_of(api) == before


async def _bucket_rows_of(api: ReportingApi) -> dict[tuple[str, ...], int]:
    async with api.sessions() as session:
        return await bucket_rows(session, duration_histogram_site_blocks)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_batch_starts_by_asking_whether_the_rollups_are_pending_and_with_its_work_memory(
    backend: str, fresh_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """One round trip: the answer of :func:`rollups_are_pending` and, on PostgreSQL, the transaction's
    work memory for the batch's statements (its own transaction's only)."""
    _sites, _catalogue, url = await _fresh_world("start", backend, fresh_database, tmp_path)
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
        sessions = session_factory(engine)
        for pending in (False, True):
            if pending:
                async with sessions() as session, session.begin():
                    await repository.defer_rollups(session, datetime.now(UTC))
            async with sessions() as session, session.begin():
                assert await repository.start_batch(session) is pending
                if backend == "postgresql":
                    assert await session.scalar(text("SHOW work_mem")) == "64MB"
            if backend == "postgresql":
                async with sessions() as session:
                    assert await session.scalar(text("SHOW work_mem")) != "64MB"
    finally:
        await engine.dispose()
