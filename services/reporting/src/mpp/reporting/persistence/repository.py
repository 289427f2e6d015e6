"""Every reporting query lives here."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Select,
    String,
    Table,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
    values,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.kit.db import DriverSql, dialect_insert
from mpp.reporting.domain.facts import PAIRED, Facts, LateApplication, paired_rows
from mpp.reporting.domain.percentiles import MAX_ERROR_SECONDS
from mpp.reporting.domain.periods import DayRange, split_months
from mpp.reporting.domain.projection import CountKey
from mpp.reporting.persistence.tables import (
    BLOCK_BUCKETS,
    BLOCK_COUNTS,
    daily_counts,
    duration_histogram,
    duration_histogram_monthly,
    duration_histogram_national_daily,
    duration_histogram_national_monthly,
    duration_histogram_site_blocks,
    duration_histogram_total_daily,
    duration_histogram_total_monthly,
    late_applications,
    metric_facts,
    metric_facts_monthly,
    metric_facts_national_daily,
    metric_facts_national_monthly,
    metric_facts_site_monthly,
    metric_hourly,
    rollups_pending,
    summary_days,
    summary_facts,
    summary_histogram,
    summary_histogram_hourly,
    summary_hourly,
)


def _array(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal of codes, dates or integers (none: ``NULL``), sent as one text
    parameter: asyncpg would otherwise check every element of an array parameter against several ABCs,
    which costs more than the rest of a batch's projection.

    A JSON array without backslashes is an array literal once its brackets become braces (strings and
    dates quoted, integers bare, ``null`` unquoted); anything JSON escapes is escaped the array
    literal's way instead."""
    encoded = orjson.dumps(values).decode()
    if "\\" not in encoded:
        return "{" + encoded[1:-1] + "}"
    quoted = (
        "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    )
    return "{" + ",".join(quoted) + "}"


def _unnest(columns: Sequence[tuple[str, str]]) -> str:
    """``unnest`` over text parameters holding array literals, each cast to its element type; codes
    (``varchar``) compare bytewise, as the read models' code columns do (see ``tables._code``), so a
    batch's rows are sorted and summed without the database locale's string comparison."""
    bytewise = ' COLLATE "C"'
    return ", ".join(
        f"CAST(CAST(:{name} AS text) AS {kind}[]){bytewise if kind == 'varchar' else ''}"
        for name, kind in columns
    )


async def add_counts(session: AsyncSession, counts: Counter[CountKey]) -> None:
    """Add increments to the daily counts, one upsert statement per batch."""
    if not counts:
        return
    keys = sorted(counts, key=lambda k: (k.day, k.site, k.agency, k.service_type, k.metric))
    if session.get_bind().dialect.name == "postgresql":
        # Column arrays as five parameters: the statement compiles once, whatever the batch size.
        await session.execute(
            text(
                "INSERT INTO daily_counts (day, site, agency, service_type, metric, count) "  # noqa: S608
                "SELECT * FROM unnest("
                + _unnest(
                    [
                        ("days", "date"),
                        ("sites", "varchar"),
                        ("agencies", "varchar"),
                        ("types", "varchar"),
                        ("metrics", "varchar"),
                        ("counts", "bigint"),
                    ]
                )
                + ") "
                "ON CONFLICT (day, site, agency, service_type, metric) "
                "DO UPDATE SET count = daily_counts.count + excluded.count"
            ),
            {
                "days": _array([k.day for k in keys]),
                "sites": _array([k.site for k in keys]),
                "agencies": _array([k.agency for k in keys]),
                "types": _array([k.service_type for k in keys]),
                "metrics": _array([k.metric for k in keys]),
                "counts": _array([counts[k] for k in keys]),
            },
        )
        return
    rows = [
        {
            "day": k.day,
            "site": k.site,
            "agency": k.agency,
            "service_type": k.service_type,
            "metric": k.metric,
            "count": counts[k],
        }
        for k in keys
    ]
    stmt = dialect_insert(session, daily_counts).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            daily_counts.c.day,
            daily_counts.c.site,
            daily_counts.c.agency,
            daily_counts.c.service_type,
            daily_counts.c.metric,
        ],
        set_={"count": daily_counts.c.count + stmt.excluded.count},
    )
    await session.execute(stmt)


async def query_daily(
    session: AsyncSession,
    *,
    start: date | None,
    end: date | None,
    site: str | None,
    agency: str | None,
) -> list[dict[str, Any]]:
    t = daily_counts
    q = select(t.c.day, t.c.site, t.c.agency, t.c.service_type, t.c.metric, t.c.count)
    if start:
        q = q.where(t.c.day >= start)
    if end:
        q = q.where(t.c.day <= end)
    if site:
        q = q.where(t.c.site == site)
    if agency:
        q = q.where(t.c.agency == agency)
    q = q.order_by(t.c.day, t.c.site, t.c.agency, t.c.service_type, t.c.metric)
    return [dict(r._mapping) for r in (await session.execute(q)).all()]


async def query_totals(
    session: AsyncSession, *, start: date | None, end: date | None, site: str | None, agency: str | None
) -> dict[str, int]:
    t = daily_counts
    q = select(t.c.metric, func.sum(t.c.count)).group_by(t.c.metric)
    if start:
        q = q.where(t.c.day >= start)
    if end:
        q = q.where(t.c.day <= end)
    if site:
        q = q.where(t.c.site == site)
    if agency:
        q = q.where(t.c.agency == agency)
    return {m: int(n) for m, n in (await session.execute(q)).all()}


# --- metric read models -----------------------------------------------------------------------

_SQLITE_ROWS = 2000
_SQLITE_PARAMETERS = 32_000
_PG_TYPES = {"day": "date", "month": "date", "hour": "smallint", "bucket": "integer", "block": "integer"}


async def _add(
    session: AsyncSession,
    table: Table,
    key_columns: Sequence[str],
    value_column: str,
    rows: Mapping[Any, int],
    paired: Mapping[Any, int] | None = None,
) -> None:
    """Add ``rows`` (key tuple in ``key_columns`` order -> increment) to ``table``: one upsert statement
    per batch, keys in sorted order so concurrent writers lock rows in the same order. With ``paired``
    (key -> increment of the ``paired`` column, 0 for a key it lacks), both columns add up."""
    if not rows:
        return
    keys = sorted(rows)
    value_columns = {value_column: [rows[k] for k in keys]}
    if paired is not None:
        value_columns["paired"] = [paired.get(k, 0) for k in keys]
    await _add_columns(session, table, key_columns, keys, value_columns)


async def _add_columns(
    session: AsyncSession,
    table: Table,
    key_columns: Sequence[str],
    keys: Sequence[Any],
    value_columns: Mapping[str, Sequence[int]],
) -> None:
    """Add ``value_columns`` (column -> increments, in the order of ``keys``, key tuples in
    ``key_columns`` order and sorted) to ``table``'s rows of ``keys``."""
    columns = {c: [k[i] for k in keys] for i, c in enumerate(key_columns)}
    if session.get_bind().dialect.name == "postgresql":
        # Column arrays as parameters: the statement compiles once, whatever the batch size.
        params = {c: _array(v) for c, v in columns.items()}
        params.update({f"_{c}": _array(v) for c, v in value_columns.items()})
        arrays = _unnest(
            [
                *((c, _PG_TYPES.get(c, "varchar")) for c in key_columns),
                *((f"_{c}", "bigint") for c in value_columns),
            ]
        )
        names = ", ".join(key_columns)
        # Table and column names come from this module's own metadata, never from input.
        await session.execute(
            text(
                f"INSERT INTO {table.name} ({names}, {', '.join(value_columns)}) "  # noqa: S608
                f"SELECT * FROM unnest({arrays})" + _adding(table, key_columns, value_columns)
            ),
            params,
        )
        return
    # SQLite binds at most 32,766 parameters per statement: a multi-row upsert per chunk of keys.
    step = min(_SQLITE_ROWS, _SQLITE_PARAMETERS // (len(key_columns) + len(value_columns)))
    for first in range(0, len(keys), step):
        chunk = range(first, min(first + step, len(keys)))
        stmt = dialect_insert(session, table).values(
            [
                {
                    **{c: columns[c][i] for c in key_columns},
                    **{c: v[i] for c, v in value_columns.items()},
                }
                for i in chunk
            ]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[c] for c in key_columns],
            set_={c: table.c[c] + stmt.excluded[c] for c in value_columns},
        )
        await session.execute(stmt)


_FACT_KEYS = ("day", "site", "agency", "service_type", "measure")
_HOUR_KEYS = ("day", "site", "agency", "service_type", "hour", "measure")
_HISTOGRAM_KEYS = ("day", "site", "agency", "service_type", "hour", "kind", "bucket")
# Each roll-up's key columns in the order of its primary key (tables.py): its rows are written in that
# order.
_FACT_ROLLUPS = (
    (metric_facts_monthly, ("site", "month", "agency", "service_type", "measure")),
    (metric_facts_national_daily, ("day", "measure", "agency", "service_type")),
    (metric_facts_national_monthly, ("month", "agency", "service_type", "measure")),
    # Without agency or service type.
    (metric_facts_site_monthly, ("site", "month", "measure")),
)
_HISTOGRAM_ROLLUPS = (
    (duration_histogram_monthly, ("site", "month", "agency", "service_type", "kind", "bucket")),
    (duration_histogram_national_daily, ("kind", "day", "agency", "service_type", "bucket")),
    (duration_histogram_national_monthly, ("month", "agency", "service_type", "kind", "bucket")),
    # Without agency or service type (see add_summed_histograms); 16 buckets to a row (_blocks_sql).
    (duration_histogram_site_blocks, ("site", "month", "kind", "block")),
    (duration_histogram_total_daily, ("day", "kind", "bucket")),
    (duration_histogram_total_monthly, ("month", "kind", "bucket")),
)


def _upsert_sql(
    table: Table,
    columns: Sequence[str],
    value_columns: Sequence[str],
    *,
    source_columns: Sequence[str],
    source_values: Sequence[str],
    adding: bool = True,
) -> str:
    """``INSERT INTO table`` the rows of ``d`` summed per ``columns`` (``month`` is the first of ``day``'s
    month), in key order so concurrent writers lock rows in the same order; a key already held adds up
    (``adding``; without it, into an empty table, a plain insert). ``source_values`` are ``d``'s columns
    of ``value_columns``."""
    exprs = [
        "CAST(date_trunc('month', CAST(day AS timestamp)) AS date)" if c == "month" else c for c in columns
    ]
    names = ", ".join(columns)
    positions = ", ".join(str(i + 1) for i in range(len(columns)))
    aggregated = tuple(columns) != tuple(source_columns)
    sums = ", ".join(f"sum({v})" for v in source_values)
    select_rows = (
        f"SELECT {', '.join(exprs)}, {sums} FROM d GROUP BY {positions} ORDER BY {positions}"  # noqa: S608
        if aggregated
        else f"SELECT {names}, {', '.join(source_values)} FROM d ORDER BY {positions}"  # noqa: S608
    )
    # Table and column names come from this module's own metadata, never from input.
    insert = f"INSERT INTO {table.name} ({names}, {', '.join(value_columns)}) {select_rows}"
    return insert + _adding(table, columns, value_columns) if adding else insert


def _adding(table: Table, key_columns: Sequence[str], value_columns: Iterable[str]) -> str:
    """The ``ON CONFLICT`` clause of an insert into ``table`` that adds its values to a key already held."""
    updates = ", ".join(f"{v} = {table.name}.{v} + excluded.{v}" for v in value_columns)
    return f" ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"


def _blocks_sql(table: Table, columns: Sequence[str], source_value: str, adding: bool = True) -> str:
    """``INSERT INTO`` a roll-up of 16 buckets to a row (``tables.BLOCK_BUCKETS``) the rows of ``d``
    (day, bucket and the count ``source_value``) summed per ``columns`` (``month`` and ``block`` from
    ``d``'s day and bucket), in key order; a key already held adds up each count (``adding``)."""
    size = BLOCK_BUCKETS
    exprs = {
        "month": "CAST(date_trunc('month', CAST(day AS timestamp)) AS date)",
        "block": f"bucket / {size}",
    }
    keys = ", ".join(exprs.get(c, c) for c in columns)
    positions = ", ".join(str(i + 1) for i in range(len(columns)))
    sums = ", ".join(
        f"sum(CASE WHEN bucket % {size} = {i} THEN {source_value} ELSE 0 END)" for i in range(size)
    )
    # Table and column names come from this module's own metadata, never from input.
    insert = (
        f"INSERT INTO {table.name} ({', '.join(columns)}, {', '.join(BLOCK_COUNTS)}) "  # noqa: S608
        f"SELECT {keys}, {sums} FROM d GROUP BY {positions} ORDER BY {positions}"
    )
    return insert + _adding(table, columns, BLOCK_COUNTS) if adding else insert


_WORK_MEM = text("SET LOCAL work_mem = '64MB'")
# The same setting (for the transaction) and whether the roll-ups are pending, in one round trip.
_BATCH_START = text("SELECT set_config('work_mem', '64MB', true), EXISTS (SELECT FROM rollups_pending)")
# The parameters of a family's value arrays, in the order of its value columns.
_VALUE_PARAMS = ("_values", "_paired")


@cache
def _family_sql(
    table: Table,
    key_columns: tuple[str, ...],
    value_columns: tuple[str, ...],
    rollups: tuple[tuple[Table, tuple[str, ...]], ...],
) -> Any:
    """One statement adding a batch's increments to a daily read model and to each of its roll-ups
    (which hold the same value columns): the column arrays are sent once, and PostgreSQL sums the
    roll-ups' rows from them."""
    params = _VALUE_PARAMS[: len(value_columns)]
    sources = [f"v{i}" for i in range(len(value_columns))]
    arrays = _unnest(
        [*((c, _PG_TYPES.get(c, "varchar")) for c in key_columns), *((p, "bigint") for p in params)]
    )
    source = f"d AS (SELECT * FROM unnest({arrays}) AS d({', '.join([*key_columns, *sources])}))"  # noqa: S608
    parts = [source]
    for i, (rollup, columns) in enumerate(rollups):
        if "block" in columns:
            sql = _blocks_sql(rollup, columns, sources[0])
        else:
            sql = _upsert_sql(
                rollup, columns, value_columns, source_columns=key_columns, source_values=sources
            )
        parts.append(f"r{i} AS ({sql})")
    main = _upsert_sql(table, key_columns, value_columns, source_columns=key_columns, source_values=sources)
    return text(f"WITH {', '.join(parts)} {main}")


async def _add_family(
    session: AsyncSession,
    table: Table,
    key_columns: tuple[str, ...],
    value_columns: tuple[str, ...],
    rows: Mapping[Any, int],
    rollups: tuple[tuple[Table, tuple[str, ...]], ...] = (),
    paired: Mapping[Any, int] | None = None,
) -> None:
    """Add ``rows`` (key tuple in ``key_columns`` order -> increment of the first value column; with
    ``paired``, key -> increment of the second, 0 for a key it lacks) to ``table`` and its ``rollups``
    (each a table and its key columns, a subset of ``key_columns`` with ``month`` for ``day``)."""
    if not rows:
        return
    columns = list(zip(*rows.keys(), strict=True))
    params = {c: _array(columns[i]) for i, c in enumerate(key_columns)}
    params["_values"] = _array(list(rows.values()))
    if paired is not None:
        get = paired.get
        params["_paired"] = _array([get(k, 0) for k in rows])
    await session.execute(_family_sql(table, key_columns, value_columns, rollups), params)


_FACT_VALUES = ("value", "paired")


async def _add_facts_postgresql(session: AsyncSession, facts: Facts, *, rollups: bool, started: bool) -> None:
    # Three statements per batch: the roll-ups are summed by PostgreSQL from the daily increments, with
    # room to sort and aggregate a large batch (a rebuild's) in memory rather than in temp files.
    if not started:
        await session.execute(_WORK_MEM)
    fact_values, paired = paired_rows(facts.counts)
    fact_rollups, histogram_rollups = (_FACT_ROLLUPS, _HISTOGRAM_ROLLUPS) if rollups else ((), ())
    await _add_family(
        session, metric_facts, _FACT_KEYS, _FACT_VALUES, fact_values, fact_rollups, paired=paired
    )
    await _add_family(session, metric_hourly, _HOUR_KEYS, ("value",), facts.hourly)
    await _add_family(
        session, duration_histogram, _HISTOGRAM_KEYS, ("count",), facts.histogram, histogram_rollups
    )


async def add_facts(
    session: AsyncSession, facts: Facts, *, rollups: bool = True, started: bool = False
) -> None:
    """Add one batch's fact increments to the metric read models and their roll-ups (the caller's
    transaction holds them all, so every roll-up always equals the sum of its days). ``rollups=False``
    (PostgreSQL, while :func:`rollups_are_pending`) writes the daily read models only. ``started``: the
    transaction began with :func:`start_batch`."""
    if session.get_bind().dialect.name == "postgresql":
        await _add_facts_postgresql(session, facts, rollups=rollups, started=started)
        return
    if not rollups:
        raise ValueError("the roll-ups are deferred on PostgreSQL only")
    base = ("day", "site", "agency", "service_type")
    fact_values, paired = paired_rows(facts.counts)
    await _add(session, metric_facts, (*base, "measure"), "value", fact_values, paired)
    await _add(session, metric_hourly, (*base, "hour", "measure"), "value", facts.hourly)
    await _add(session, duration_histogram, (*base, "hour", "kind", "bucket"), "count", facts.histogram)
    monthly: Counter[tuple[Any, ...]] = Counter()
    national: Counter[tuple[Any, ...]] = Counter()
    national_monthly: Counter[tuple[Any, ...]] = Counter()
    p_monthly: Counter[tuple[Any, ...]] = Counter()
    p_national: Counter[tuple[Any, ...]] = Counter()
    p_national_monthly: Counter[tuple[Any, ...]] = Counter()
    site_monthly: Counter[tuple[Any, ...]] = Counter()
    p_site_monthly: Counter[tuple[Any, ...]] = Counter()
    for (day, site, agency, st, measure), n in fact_values.items():
        month = day.replace(day=1)
        monthly[(month, site, agency, st, measure)] += n
        national[(day, agency, st, measure)] += n
        national_monthly[(month, agency, st, measure)] += n
        site_monthly[(site, month, measure)] += n
    for (day, site, agency, st, measure), n in paired.items():
        month = day.replace(day=1)
        p_monthly[(month, site, agency, st, measure)] += n
        p_national[(day, agency, st, measure)] += n
        p_national_monthly[(month, agency, st, measure)] += n
        p_site_monthly[(site, month, measure)] += n
    facts_key = ("agency", "service_type", "measure")
    await _add(session, metric_facts_monthly, ("month", "site", *facts_key), "value", monthly, p_monthly)
    await _add(session, metric_facts_national_daily, ("day", *facts_key), "value", national, p_national)
    await _add(
        session,
        metric_facts_national_monthly,
        ("month", *facts_key),
        "value",
        national_monthly,
        p_national_monthly,
    )
    await _add(
        session,
        metric_facts_site_monthly,
        ("site", "month", "measure"),
        "value",
        site_monthly,
        p_site_monthly,
    )
    h_monthly: Counter[tuple[Any, ...]] = Counter()
    h_national: Counter[tuple[Any, ...]] = Counter()
    h_national_monthly: Counter[tuple[Any, ...]] = Counter()
    for (day, site, agency, st, _hour, kind, bucket), n in facts.histogram.items():
        month = day.replace(day=1)
        h_monthly[(month, site, agency, st, kind, bucket)] += n
        h_national[(day, agency, st, kind, bucket)] += n
        h_national_monthly[(month, agency, st, kind, bucket)] += n
    hist = ("kind", "bucket")
    await _add(session, duration_histogram_monthly, ("month", *base[1:], *hist), "count", h_monthly)
    await _add(session, duration_histogram_national_daily, ("day", *base[2:], *hist), "count", h_national)
    await _add(
        session,
        duration_histogram_national_monthly,
        ("month", *base[2:], *hist),
        "count",
        h_national_monthly,
    )
    await add_summed_histograms(session, facts)


# --- roll-ups filled at the end of a rebuild --------------------------------------------------------


async def rollups_are_pending(session: AsyncSession) -> bool:
    """Whether the roll-ups are left to fill (a rebuild is under way or was interrupted): the daily read
    models alone then hold the figures."""
    return bool(await session.scalar(select(exists().select_from(rollups_pending))))


async def start_batch(session: AsyncSession) -> bool:
    """:func:`rollups_are_pending`, and on PostgreSQL the transaction's work memory for
    :func:`add_facts` (``started=True``) in the same round trip: a projector batch's statements wait
    on a busy event loop for their answers, so the fewer the better."""
    if session.get_bind().dialect.name != "postgresql":
        return await rollups_are_pending(session)
    return bool((await session.execute(_BATCH_START)).one()[1])


async def defer_rollups(session: AsyncSession, since: datetime) -> None:
    """Leave the (emptied) roll-ups to :func:`fill_pending_rollups`: a rebuild's batches then write the
    daily read models only, about half the rows. PostgreSQL only."""
    await session.execute(rollups_pending.insert().values(since=since))


async def fill_pending_rollups(session: AsyncSession) -> bool:
    """Fill every roll-up from the daily read models if they are pending, in the caller's transaction,
    and mark them kept again; false when there was nothing to do. Two processes filling at once: the
    second waits for the first's row lock and then finds nothing to do."""
    if not await _take_pending_mark(session):
        return False
    await session.execute(_WORK_MEM)
    for fill in _FILLS:
        await _fill_one(session, *fill)
    return True


FILL_CONNECTIONS = 2
"""Connections :func:`fill_pending_rollups_concurrently` fills roll-ups on at once by default."""


async def fill_pending_rollups_concurrently(
    sessions: async_sessionmaker[AsyncSession], connections: int = FILL_CONNECTIONS
) -> bool:
    """:func:`fill_pending_rollups` on up to ``connections`` connections at once (PostgreSQL runs each
    statement on one core): the mark is taken in a transaction of its own, each roll-up is emptied and
    filled in its own transaction once what it is summed from is filled, and the mark is cleared last,
    when every roll-up has committed. Stopped before that (a failure, ``kill -9``), the mark stays, and
    the next fill empties and fills every roll-up again; until then figures are read from the daily
    read models. A second filler waits for the mark's row lock and then finds nothing to do, as with
    :func:`fill_pending_rollups`. Used where no batch of the projector needs the same transaction: at
    the end of a rebuild and when the service starts."""
    async with sessions() as session, session.begin():
        if not await _take_pending_mark(session):
            return False
        filled = {rollup: asyncio.Event() for rollup, *_ in _FILLS}
        slots = asyncio.Semaphore(max(connections, 1))

        async def fill(
            rollup: Table, columns: tuple[str, ...], source: Table, values: tuple[str, ...]
        ) -> None:
            if source in filled:  # summed from a finer roll-up: that one first
                await filled[source].wait()
            async with slots, sessions() as worker, worker.begin():
                await worker.execute(_WORK_MEM)
                await _fill_one(worker, rollup, columns, source, values)
            filled[rollup].set()

        # A failure cancels the other fills; the mark's transaction then rolls back with the mark kept.
        async with asyncio.TaskGroup() as group:
            for item in _FILLS:
                group.create_task(fill(*item), name=f"fill {item[0].name}")
    return True


async def _take_pending_mark(session: AsyncSession) -> bool:
    """Delete the pending mark in the caller's transaction (its row lock makes another filler wait);
    false when there is none, or another filler has just cleared it."""
    if not await rollups_are_pending(session):
        return False
    return (
        await session.execute(delete(rollups_pending).returning(rollups_pending.c.since))
    ).first() is not None


async def _fill_one(
    session: AsyncSession, rollup: Table, columns: tuple[str, ...], source: Table, values: tuple[str, ...]
) -> None:
    """Empty ``rollup`` and sum it again from the whole of ``source``, in the caller's transaction."""
    await session.execute(delete(rollup))
    await session.execute(_fill_sql(rollup, columns, source, values))


# What each roll-up is summed from when filled: the daily table, or a finer roll-up filled before it (far
# fewer rows to read). Every roll-up of _FACT_ROLLUPS and _HISTOGRAM_ROLLUPS is here, finer ones first.
_FILL_SOURCES: tuple[tuple[Table, Table], ...] = (
    (metric_facts_monthly, metric_facts),
    (metric_facts_national_daily, metric_facts),
    (metric_facts_national_monthly, metric_facts_national_daily),
    (metric_facts_site_monthly, metric_facts_monthly),
    (duration_histogram_monthly, duration_histogram),
    (duration_histogram_national_daily, duration_histogram),
    (duration_histogram_national_monthly, duration_histogram_national_daily),
    (duration_histogram_site_blocks, duration_histogram_monthly),
    (duration_histogram_total_daily, duration_histogram_national_daily),
    (duration_histogram_total_monthly, duration_histogram_total_daily),
)
_FACT_ROLLUP_KEYS = dict(_FACT_ROLLUPS)
_HISTOGRAM_ROLLUP_KEYS = dict(_HISTOGRAM_ROLLUPS)
_FILLS = tuple(
    (rollup, _FACT_ROLLUP_KEYS[rollup], source, _FACT_VALUES)
    if rollup in _FACT_ROLLUP_KEYS
    else (rollup, _HISTOGRAM_ROLLUP_KEYS[rollup], source, ("count",))
    for rollup, source in _FILL_SOURCES
)


@cache
def _fill_sql(rollup: Table, columns: tuple[str, ...], source: Table, value_columns: tuple[str, ...]) -> Any:
    """``rollup`` (emptied) summed from the whole of ``source`` by the statement that sums a batch into it
    (its ``month`` is computed from a ``day``: a monthly source's month serves as one), a plain insert:
    each key comes once out of the sums, and finding none already held costs an index probe a row."""
    keys = tuple(c.name for c in source.primary_key.columns)
    monthly = "month" in keys
    rows = f"SELECT *, month AS day FROM {source.name}" if monthly else f"SELECT * FROM {source.name}"  # noqa: S608
    if "block" in columns:
        insert = _blocks_sql(rollup, columns, value_columns[0], adding=False)
    else:
        insert = _upsert_sql(
            rollup, columns, value_columns, source_columns=keys, source_values=value_columns, adding=False
        )
    return text(f"WITH d AS ({rows}) {insert}")  # names from this module's own metadata, never from input


async def add_summed_histograms(session: AsyncSession, facts: Facts) -> None:
    """Add one batch's histogram increments to the histogram roll-ups without agency or service type
    (``duration_histogram_site_blocks``, ``duration_histogram_total_daily`` and ``_total_monthly``), in
    the caller's transaction like every other read model (SQLite; on PostgreSQL they are part of the
    histogram family's single statement, ``_HISTOGRAM_ROLLUPS``)."""
    blocks: dict[tuple[Any, ...], list[int]] = {}
    days: Counter[tuple[Any, ...]] = Counter()
    months: Counter[tuple[Any, ...]] = Counter()
    for (day, site, _agency, _st, _hour, kind, bucket), n in facts.histogram.items():
        month = day.replace(day=1)
        block, at = divmod(bucket, BLOCK_BUCKETS)
        counts = blocks.get((site, month, kind, block))
        if counts is None:
            counts = blocks[(site, month, kind, block)] = [0] * BLOCK_BUCKETS
        counts[at] += n
        days[(day, kind, bucket)] += n
        months[(month, kind, bucket)] += n
    if blocks:
        keys = sorted(blocks)
        by_column = {c: [blocks[k][i] for k in keys] for i, c in enumerate(BLOCK_COUNTS)}
        await _add_columns(
            session, duration_histogram_site_blocks, ("site", "month", "kind", "block"), keys, by_column
        )
    await _add(session, duration_histogram_total_daily, ("day", "kind", "bucket"), "count", days)
    await _add(session, duration_histogram_total_monthly, ("month", "kind", "bucket"), "count", months)


READ_WORK_MEM = "32MB"


async def prepare_reads(session: AsyncSession) -> None:
    """Let the figures' aggregations of this transaction hash in memory (PostgreSQL): a region's months
    group hundreds of thousands of histogram rows, which the default 4 MB would spill to disk. Reads
    only; the setting ends with the transaction."""
    if _postgres(session):
        await session.execute(text(f"SET LOCAL work_mem = '{READ_WORK_MEM}'"))


@dataclass(frozen=True, slots=True)
class Grain:
    """Which read model answers a query: per day or per month, per site or every site summed."""

    monthly: bool
    national: bool


_FACTS: dict[Grain, Table] = {
    Grain(monthly=False, national=False): metric_facts,
    Grain(monthly=True, national=False): metric_facts_monthly,
    Grain(monthly=False, national=True): metric_facts_national_daily,
    Grain(monthly=True, national=True): metric_facts_national_monthly,
}
_HISTOGRAMS: dict[Grain, Table] = {
    Grain(monthly=False, national=False): duration_histogram,
    Grain(monthly=True, national=False): duration_histogram_monthly,
    Grain(monthly=False, national=True): duration_histogram_national_daily,
    Grain(monthly=True, national=True): duration_histogram_national_monthly,
}


def plan(
    scope: Scope, dims: Sequence[str], *, monthly: bool, rollups: bool = True
) -> list[tuple[Grain, DayRange]]:
    """The coarsest read models that cover the scope's days exactly: whole months from a monthly roll-up
    and the edge days from a daily one (when the caller needs no finer time than a month), every site
    summed when the query neither filters nor groups by site. Each day is read from exactly one part."""
    national = rollups and scope.sites is None and "site" not in dims
    if not (rollups and monthly):
        return [(Grain(monthly=False, national=national), (scope.start, scope.end))]
    months, edges = split_months(scope.start, scope.end)
    parts = [(Grain(monthly=False, national=national), edge) for edge in edges]
    if months is not None:
        parts.insert(0, (Grain(monthly=True, national=national), months))
    return parts


@dataclass(frozen=True, slots=True)
class Scope:
    """What a query may read: a day range, a set of sites (none: every site), an agency, a service."""

    start: date | None = None
    end: date | None = None
    sites: frozenset[str] | None = None
    agency: str | None = None
    service_type: str | None = None
    summaries: bool = False
    """Also read the national read models of daily summaries (a national deployment): sites' days known
    only through their summaries count from those; a day this deployment projected itself counts from
    its local events alone."""


def _where(q: Select[Any], t: Table, scope: Scope, days: DayRange | None = None) -> Select[Any]:
    start, end = (scope.start, scope.end) if days is None else days
    time = t.c.month if "month" in t.c else t.c.day
    if start:
        q = q.where(time >= start)
    if end:
        q = q.where(time <= end)
    if scope.sites is not None:
        q = q.where(t.c.site.in_(sorted(scope.sites)))
    if scope.agency is not None:
        q = q.where(t.c.agency == scope.agency)
    if scope.service_type is not None:
        q = q.where(t.c.service_type == scope.service_type)
    return q


def _summed(
    t: Table,
    group: Sequence[Any],
    summed_values: Sequence[Any],
    condition: Any,
    scope: Scope,
    days: DayRange,
    regions: Mapping[str, str] | None,
    *,
    joined: bool,
) -> Select[Any]:
    """``select(*group, *(sum(v) for v in summed_values))`` over ``t`` where ``condition``, in ``scope``
    on ``days``; with ``regions`` (site -> region code), the site column holds the site's region instead
    (``""`` for a site ``regions`` does not know).

    On PostgreSQL (``joined``) the rows are joined by hash to a list of (site, region) pairs and summed
    once per region; elsewhere the sites are summed first and a ``CASE`` maps each site's sums (a
    ``CASE`` per row read would walk one branch per site: hundreds of sites times a few hundred buckets
    each)."""
    if regions and joined:
        pairs = values(column("code", String), column("region", String), name="regions").data(
            sorted(regions.items())
        )
        region = func.coalesce(pairs.c.region, literal("")).label("site")
        columns = [region if c is t.c.site else c for c in group]
        source = t.outerjoin(pairs, pairs.c.code == t.c.site)
        sums = [_sum(v) for v in summed_values]
        joined_q: Select[Any] = select(*columns, *sums).select_from(source).where(condition)
        return _where(joined_q.group_by(*columns), t, scope, days)
    if regions is None and _keyed(t, group):
        # One row per group already (a site's months of a per-site roll-up): nothing to sum, and no hash
        # of tens of thousands of groups with a numeric sum per column.
        return _where(select(*group, *summed_values).where(condition), t, scope, days)
    q: Select[Any] = select(*group, *(_sum(v) for v in summed_values)).where(condition).group_by(*group)
    q = _where(q, t, scope, days)
    if regions is None:
        return q
    sub = q.subquery()
    keys, totals = list(sub.c)[: len(group)], list(sub.c)[len(group) :]
    mapped = case(regions, value=sub.c.site, else_=literal("")) if regions else literal("")
    columns = [mapped.label("site") if c.name == "site" else c for c in keys]
    summed: Select[Any] = select(*columns, *(_sum(v) for v in totals)).group_by(*columns)
    return summed


def _keyed(t: Table, group: Sequence[Any]) -> bool:
    """Whether ``group`` holds every column of ``t``'s primary key, so each row is a group of its own."""
    columns = {getattr(c, "element", c) for c in group}
    return all(c in columns for c in t.primary_key.columns)


def _sum(value: Any) -> Any:
    """A sum of counts as a 64-bit integer (PostgreSQL sums ``bigint`` as ``numeric``, which the driver
    turns into a ``Decimal`` per row: tens of thousands of rows for a region's histograms by month)."""
    return cast(func.sum(value), BigInteger)


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _measures(column: Any, measures: Sequence[str]) -> Any:
    return or_(*(column.startswith(m, autoescape=True) if m.endswith("_") else column == m for m in measures))


def _not_local(t: Table) -> Any:
    """A summary row of a (site, day) that the local read models do not hold: local events win."""
    f = metric_facts
    return ~exists().where(f.c.site == t.c.site, f.c.day == t.c.day)


async def _with_summaries(
    session: AsyncSession,
    scope: Scope,
    local: Table,
    national: Table | None,
    columns: Sequence[str],
    values: Sequence[str],
    condition: Any,
) -> list[tuple[Any, ...]]:
    """Rows ``(*columns, *sums)`` over the local read model and, in a national deployment, its
    summaries (a value column the summaries lack counts 0 there)."""

    def part(t: Table) -> Select[Any]:
        cells = [(t.c[v] if v in t.c else literal(0)).label(f"v{i}") for i, v in enumerate(values)]
        q = select(*(t.c[c] for c in columns), *cells).where(condition(t))
        return _where(q, t, scope)

    if scope.summaries and national is not None:
        both = union_all(part(local), part(national).where(_not_local(national))).subquery()
        group = [both.c[c] for c in columns]
        sums = [func.sum(both.c[f"v{i}"]) for i in range(len(values))]
        q = select(*group, *sums).group_by(*group)
    else:
        t = local
        group = [t.c[c] for c in columns]
        sums = [func.sum(t.c[v]) for v in values]
        q = _where(select(*group, *sums).where(condition(t)).group_by(*group), t, scope)
    return [tuple(r) for r in (await session.execute(q)).all()]


def _regional(
    rows: list[tuple[Any, ...]], dims: Sequence[str], regions: Mapping[str, str] | None, by_time: bool
) -> list[tuple[Any, ...]]:
    """Rows of the summaries' path in the shape of the roll-ups' path: the site column holding its
    region (``""`` for a site ``regions`` does not know) and no time when the caller needs none. Keys
    may repeat; the caller adds them up."""
    at = 1 + list(dims).index("site") if regions is not None and "site" in dims else None
    shaped = []
    for row in rows:
        cells = list(row)
        if at is not None:
            cells[at] = regions.get(cells[at], "") if regions is not None else cells[at]
        if not by_time:
            cells[0] = None
        shaped.append(tuple(cells))
    return shaped


async def fact_sums(
    session: AsyncSession,
    scope: Scope,
    *,
    dims: Sequence[str],
    measures: Sequence[str],
    monthly: bool = False,
    by_time: bool = True,
    rollups: bool = True,
    regions: Mapping[str, str] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, measure, sum)`` of the facts in scope; with ``regions`` (site -> region
    code), the ``site`` dimension holds the region instead (``""`` for a site it does not know).

    With ``monthly``, the caller needs no finer time than a month: whole months may come as one row
    dated the first of the month. Without ``by_time`` it needs no time at all and ``day`` is none. A
    key may come in several rows (a month and its edge days), to be added up by the caller. Without an
    agency or service type in the query, whole months of sites come from the per-site roll-up. A
    national deployment reading daily summaries too (``scope.summaries``) reads the daily tables."""
    stored, pairs = _stored_measures(measures)
    value_columns = ["value", "paired"] if pairs else ["value"]
    if scope.summaries:
        rows = await _with_summaries(
            session,
            scope,
            metric_facts,
            summary_facts,
            ["day", *dims, "measure"],
            value_columns,
            lambda t: _measures(t.c.measure, stored),
        )
        return _unpaired(_regional(rows, dims, regions, by_time), measures, pairs)
    parts = []
    for grain, days in plan(scope, dims, monthly=monthly, rollups=rollups):
        t = _FACTS[grain]
        if grain.monthly and not grain.national and not _detail(scope, dims):
            t = metric_facts_site_monthly
        time = t.c.month if grain.monthly else t.c.day
        group = [*([time.label("t")] if by_time else []), *(t.c[d] for d in dims), t.c.measure]
        mapping = regions if "site" in dims else None
        parts.append(
            _summed(
                t,
                group,
                [t.c[v] for v in value_columns],
                _measures(t.c.measure, stored),
                scope,
                days,
                mapping,
                joined=_postgres(session),
            )
        )
    return _unpaired(await _rows(session, parts, by_time), measures, pairs)


def _detail(scope: Scope, dims: Sequence[str]) -> bool:
    """Whether a query groups or filters by agency or service type (or by hour): the roll-ups summed
    over them (``*_site_monthly``, ``duration_histogram_total_*``) cannot answer it."""
    return bool(set(dims) - {"site"}) or scope.agency is not None or scope.service_type is not None


def _matches(measure: str, measures: Sequence[str]) -> bool:
    """Whether ``measures`` (names, and prefixes ending in ``_``) name ``measure``, as :func:`_measures`."""
    return any(measure.startswith(m) if m.endswith("_") else measure == m for m in measures)


def _stored_measures(measures: Sequence[str]) -> tuple[list[str], bool]:
    """The measures to read for ``measures``: those, and the first of each pair whose second they name
    (held in the first's row, ``tables._facts_table``); and whether any second is wanted."""
    firsts = [first for first, second in PAIRED.items() if _matches(second, measures)]
    return [*measures, *(f for f in firsts if f not in measures)], bool(firsts)


def _unpaired(rows: list[tuple[Any, ...]], measures: Sequence[str], pairs: bool) -> list[tuple[Any, ...]]:
    """Rows ``(*key, measure, value[, paired])`` as rows ``(*key, measure, sum)`` of the ``measures``
    asked for: a pair's row gives its second measure a row of its own (none when it is zero, as when it
    was never added), and a first measure read only for its second gives none."""
    if not pairs:
        return rows
    out: list[tuple[Any, ...]] = []
    wanted: dict[str, bool] = {}
    for *key, measure, value, paired in rows:
        keep = wanted.get(measure)
        if keep is None:
            keep = wanted[measure] = _matches(measure, measures)
        if keep:
            out.append((*key, measure, value))
        if paired:
            second = PAIRED.get(measure)
            if second is not None:
                keep = wanted.get(second)
                if keep is None:
                    keep = wanted[second] = _matches(second, measures)
                if keep:
                    out.append((*key, second, paired))
    return out


async def _rows(session: AsyncSession, parts: Sequence[Select[Any]], by_time: bool) -> list[tuple[Any, ...]]:
    """The rows of every part, in one statement."""
    q = parts[0] if len(parts) == 1 else union_all(*parts)
    rows: Sequence[Sequence[Any]]
    if _postgres(session):
        rows = await _driver_rows(session, q)
    else:
        rows = (await session.execute(q)).all()
    return [tuple(r) for r in rows] if by_time else [(None, *r) for r in rows]


async def _driver_rows(
    session: AsyncSession, q: Select[Any] | CompoundSelect[Any]
) -> Sequence[Sequence[Any]]:
    """The rows of a read, fetched by asyncpg itself within the session's transaction
    (:class:`DriverSql`): a year of sites' histograms is tens of thousands of rows of twenty columns, and
    building SQLAlchemy's rows from the driver's records costs several times what the driver's own fetch
    does. The statement is compiled as SQLAlchemy would send it; its values (dates, codes, numbers) need
    no conversion on the way."""
    compiled = q.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    processors: Mapping[str, Any] = compiled._bind_processors
    args = []
    for name in compiled.positiontup or ():
        convert = processors.get(name)
        args.append(convert(params[name]) if callable(convert) else params[name])
    return await DriverSql(session).fetch(compiled.string, *args)


async def hourly_sums(
    session: AsyncSession, scope: Scope, *, dims: Sequence[str], measures: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, hour, measure, sum)`` of the hourly facts in scope."""
    return await _with_summaries(
        session,
        scope,
        metric_hourly,
        summary_hourly,
        ["day", *dims, "hour", "measure"],
        ["value"],
        lambda t: _measures(t.c.measure, measures),
    )


async def histogram_sums(
    session: AsyncSession,
    scope: Scope,
    *,
    dims: Sequence[str],
    kind: str,
    monthly: bool = False,
    by_time: bool = True,
    rollups: bool = True,
    regions: Mapping[str, str] | None = None,
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, bucket, count)`` of one duration histogram in scope (as :func:`histograms_sums`)."""
    rows = await histograms_sums(
        session,
        scope,
        dims=dims,
        kinds=[kind],
        monthly=monthly,
        by_time=by_time,
        rollups=rollups,
        regions=regions,
    )
    at = 1 + len(dims)
    return [(*r[:at], *r[at + 1 :]) for r in rows]


async def histograms_sums(
    session: AsyncSession,
    scope: Scope,
    *,
    dims: Sequence[str],
    kinds: Sequence[str],
    monthly: bool = False,
    by_time: bool = True,
    rollups: bool = True,
    regions: Mapping[str, str] | None = None,
    blocks: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, kind, bucket, count)`` of the duration histograms of ``kinds`` in scope
    (``monthly``, ``by_time`` and ``regions`` as in :func:`fact_sums`). The roll-ups have no hour: by
    hour, the daily histogram answers. Without an agency or service type in the query, whole months of
    sites come from the per-site roll-up and a national query from the nation's totals; with ``blocks``,
    such a query (:func:`blocked`) gives rows ``(day, *dims, kind, block, *counts)`` of 16 buckets
    instead (``tables.BLOCK_BUCKETS``: bucket ``block * 16 + i`` counts ``counts[i]``). A national
    deployment reading daily summaries too reads the daily tables (by hour, the summaries' hourly
    histograms: days of summaries that do not split by hour count only in other groupings)."""

    def wanted(t: Table) -> Any:
        return t.c.kind == kinds[0] if len(kinds) == 1 else t.c.kind.in_(sorted(kinds))

    if scope.summaries:
        rows = await _with_summaries(
            session,
            scope,
            duration_histogram,
            summary_histogram_hourly if "hour" in dims else summary_histogram,
            ["day", *dims, "kind", "bucket"],
            ["count"],
            wanted,
        )
        return _regional(rows, dims, regions, by_time)
    detail = _detail(scope, dims)
    packed = blocked(scope, dims, rollups=rollups)
    parts = []
    for grain, days in plan(scope, dims, monthly=monthly, rollups=rollups and "hour" not in dims):
        t = _HISTOGRAMS[grain]
        if not detail and grain.national:
            t = duration_histogram_total_monthly if grain.monthly else duration_histogram_total_daily
        elif not detail and grain.monthly:
            t = duration_histogram_site_blocks
        time = t.c.month if grain.monthly else t.c.day
        # Read with roll-ups and without detail, every part comes in blocks of 16 buckets, as the
        # per-site roll-up holds them (the daily tables alone answer bucket by bucket, as they always did).
        position, counts = _blocks(t) if packed else (t.c.bucket, [t.c.count])
        group = [*([time.label("t")] if by_time else []), *(t.c[d] for d in dims), t.c.kind, position]
        mapping = regions if "site" in dims else None
        parts.append(
            _summed(
                t,
                group,
                counts,
                wanted(t),
                scope,
                days,
                mapping,
                joined=_postgres(session),
            )
        )
    rows = await _rows(session, parts, by_time)
    return _unblocked(rows) if packed and not blocks else rows


def blocked(scope: Scope, dims: Sequence[str], *, rollups: bool = True) -> bool:
    """Whether :func:`histograms_sums` gives this query's rows in blocks of 16 buckets when asked to."""
    return rollups and not scope.summaries and not _detail(scope, dims)


def _blocks(t: Table) -> tuple[Any, list[Any]]:
    """A histogram table's block of 16 buckets (``tables.BLOCK_BUCKETS``) and the count of each bucket
    of the block: its own columns for ``duration_histogram_site_blocks``, from its bucket otherwise."""
    if "block" in t.c:
        return t.c.block, [t.c[c] for c in BLOCK_COUNTS]
    size: Any = literal_column(str(BLOCK_BUCKETS))
    at = t.c.bucket.op("%")(size)
    counts = [
        case((at == literal_column(str(i)), t.c.count), else_=literal_column("0"))
        for i in range(BLOCK_BUCKETS)
    ]
    return t.c.bucket.op("/")(size).label("block"), counts


def _unblocked(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows ``(*key, block, *counts)`` as rows ``(*key, bucket, count)`` of the buckets with a count."""
    size = BLOCK_BUCKETS
    out: list[tuple[Any, ...]] = []
    append = out.append
    for row in rows:
        first = len(row) - size
        key, base = row[: first - 1], row[first - 1] * size
        for i, count in enumerate(row[first:]):
            if count:
                append((*key, base + i, count))
    return out


# --- late applications --------------------------------------------------------------------------


_LATE_COLUMNS = (
    ("site", "varchar"),
    ("application_ref", "varchar"),
    ("agency", "varchar"),
    ("service_type", "varchar"),
    ("finished_day", "date"),
    ("due_day", "date"),
    ("days_late", "integer"),
)
_LATE_SQL = text(
    f"INSERT INTO {late_applications.name} ({', '.join(c for c, _ in _LATE_COLUMNS)}) "  # noqa: S608
    f"SELECT * FROM unnest({_unnest(_LATE_COLUMNS)}) ON CONFLICT DO NOTHING"
)


async def add_late(session: AsyncSession, late: Iterable[LateApplication]) -> None:
    """Record applications finished late; an application already recorded keeps its first row."""
    ordered = sorted(late)
    if not ordered:
        return
    if _postgres(session):
        # Column arrays as parameters, like the other read models: one statement that compiles once,
        # rather than a multi-row VALUES list compiled anew for every batch.
        columns = zip(*ordered, strict=True)
        await session.execute(
            _LATE_SQL,
            {name: _array(values) for (name, _), values in zip(_LATE_COLUMNS, columns, strict=True)},
        )
        return
    rows = [r._asdict() for r in ordered]
    for row in rows:
        row["due_day"] = row.pop("due")
    for first in range(0, len(rows), _SQLITE_ROWS):
        stmt = dialect_insert(session, late_applications).values(rows[first : first + _SQLITE_ROWS])
        await session.execute(stmt.on_conflict_do_nothing())


async def late_list(session: AsyncSession, scope: Scope, *, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """How many applications in scope finished late in the day range, and the ``limit`` latest-finishing
    (most days late first within a day)."""
    t = late_applications
    conditions = []
    if scope.start:
        conditions.append(t.c.finished_day >= scope.start)
    if scope.end:
        conditions.append(t.c.finished_day <= scope.end)
    if scope.sites is not None:
        conditions.append(t.c.site.in_(sorted(scope.sites)))
    if scope.agency is not None:
        conditions.append(t.c.agency == scope.agency)
    if scope.service_type is not None:
        conditions.append(t.c.service_type == scope.service_type)
    total = (await session.execute(select(func.count()).select_from(t).where(*conditions))).scalar_one()
    q = (
        select(
            t.c.site,
            t.c.application_ref,
            t.c.agency,
            t.c.service_type,
            t.c.finished_day,
            t.c.due_day,
            t.c.days_late,
        )
        .where(*conditions)
        .order_by(t.c.finished_day.desc(), t.c.days_late.desc().nulls_last(), t.c.application_ref)
        .limit(limit)
    )
    return int(total), [dict(r._mapping) for r in (await session.execute(q)).all()]


async def summary_error(session: AsyncSession, scope: Scope, kind: str) -> int:
    """How far above the exact value a percentile in scope may lie (seconds): the local buckets' error,
    or more where summaries came with coarser buckets."""
    if not scope.summaries:
        return MAX_ERROR_SECONDS
    t = summary_days
    column = t.c.waiting_error if kind == "waiting" else t.c.service_error
    q = select(func.max(column)).where(_not_local(t))
    if scope.start:
        q = q.where(t.c.day >= scope.start)
    if scope.end:
        q = q.where(t.c.day <= scope.end)
    if scope.sites is not None:
        q = q.where(t.c.site.in_(sorted(scope.sites)))
    found = (await session.execute(q)).scalar_one_or_none()
    return max(MAX_ERROR_SECONDS, int(found or 0))
