"""Every reporting query lives here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, Table, exists, func, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.db import dialect_insert
from mpp.reporting.domain.facts import Facts, LateApplication
from mpp.reporting.domain.percentiles import MAX_ERROR_SECONDS
from mpp.reporting.domain.projection import CountKey
from mpp.reporting.persistence.tables import (
    daily_counts,
    duration_histogram,
    late_applications,
    metric_facts,
    metric_hourly,
    summary_days,
    summary_facts,
    summary_histogram,
    summary_hourly,
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
                "INSERT INTO daily_counts (day, site, agency, service_type, metric, count) "
                "SELECT * FROM unnest(CAST(:days AS date[]), CAST(:sites AS varchar[]), "
                "CAST(:agencies AS varchar[]), CAST(:types AS varchar[]), CAST(:metrics AS varchar[]), "
                "CAST(:counts AS bigint[])) "
                "ON CONFLICT (day, site, agency, service_type, metric) "
                "DO UPDATE SET count = daily_counts.count + excluded.count"
            ),
            {
                "days": [k.day for k in keys],
                "sites": [k.site for k in keys],
                "agencies": [k.agency for k in keys],
                "types": [k.service_type for k in keys],
                "metrics": [k.metric for k in keys],
                "counts": [counts[k] for k in keys],
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
_PG_TYPES = {"day": "date", "hour": "smallint", "bucket": "integer"}


async def _add(
    session: AsyncSession, table: Table, key_columns: Sequence[str], value_column: str, rows: Counter[Any]
) -> None:
    """Add ``rows`` (key dataclass -> increment) to ``table``: one upsert statement per batch, keys in
    sorted order so concurrent writers lock rows in the same order."""
    if not rows:
        return
    keys = sorted(rows)
    columns = {c: [getattr(k, c) for k in keys] for c in key_columns}
    values = [rows[k] for k in keys]
    if session.get_bind().dialect.name == "postgresql":
        # Column arrays as parameters: the statement compiles once, whatever the batch size.
        arrays = ", ".join(f"CAST(:{c} AS {_PG_TYPES.get(c, 'varchar')}[])" for c in key_columns)
        names = ", ".join(key_columns)
        # Table and column names come from this module's own metadata, never from input.
        await session.execute(
            text(
                f"INSERT INTO {table.name} ({names}, {value_column}) "  # noqa: S608
                f"SELECT * FROM unnest({arrays}, CAST(:_values AS bigint[])) "
                f"ON CONFLICT ({names}) DO UPDATE SET {value_column} = "
                f"{table.name}.{value_column} + excluded.{value_column}"
            ),
            {**columns, "_values": values},
        )
        return
    # SQLite binds at most 32,766 parameters per statement: a multi-row upsert per chunk of keys.
    for first in range(0, len(keys), _SQLITE_ROWS):
        chunk = range(first, min(first + _SQLITE_ROWS, len(keys)))
        stmt = dialect_insert(session, table).values(
            [{**{c: columns[c][i] for c in key_columns}, value_column: values[i]} for i in chunk]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[c] for c in key_columns],
            set_={value_column: table.c[value_column] + stmt.excluded[value_column]},
        )
        await session.execute(stmt)


async def add_facts(session: AsyncSession, facts: Facts) -> None:
    """Add one batch's fact increments to the three metric read models."""
    base = ("day", "site", "agency", "service_type")
    await _add(session, metric_facts, (*base, "measure"), "value", facts.counts)
    await _add(session, metric_hourly, (*base, "hour", "measure"), "value", facts.hourly)
    await _add(session, duration_histogram, (*base, "hour", "kind", "bucket"), "count", facts.histogram)


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


def _where(q: Select[Any], t: Table, scope: Scope) -> Select[Any]:
    if scope.start:
        q = q.where(t.c.day >= scope.start)
    if scope.end:
        q = q.where(t.c.day <= scope.end)
    if scope.sites is not None:
        q = q.where(t.c.site.in_(sorted(scope.sites)))
    if scope.agency is not None:
        q = q.where(t.c.agency == scope.agency)
    if scope.service_type is not None:
        q = q.where(t.c.service_type == scope.service_type)
    return q


def _measures(column: Any, measures: Sequence[str]) -> Any:
    return or_(*(column.startswith(m, autoescape=True) if m.endswith("_") else column == m for m in measures))


def _not_local(t: Table) -> Any:
    """A summary row of a (site, day) that the local read models do not hold: local events win."""
    f = metric_facts
    return ~exists().where(f.c.site == t.c.site, f.c.day == t.c.day)


async def _sums(
    session: AsyncSession,
    scope: Scope,
    local: Table,
    national: Table | None,
    columns: Sequence[str],
    value: str,
    condition: Any,
) -> list[tuple[Any, ...]]:
    """Rows ``(*columns, sum)`` over the local read model and, in a national deployment, its summaries."""

    def part(t: Table) -> Select[Any]:
        q = select(*(t.c[c] for c in columns), t.c[value].label("v")).where(condition(t))
        return _where(q, t, scope)

    if scope.summaries and national is not None:
        both = union_all(part(local), part(national).where(_not_local(national))).subquery()
        group = [both.c[c] for c in columns]
        q = select(*group, func.sum(both.c.v)).group_by(*group)
    else:
        t = local
        group = [t.c[c] for c in columns]
        q = _where(select(*group, func.sum(t.c[value])).where(condition(t)).group_by(*group), t, scope)
    return [tuple(r) for r in (await session.execute(q)).all()]


async def fact_sums(
    session: AsyncSession, scope: Scope, *, dims: Sequence[str], measures: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, measure, sum)`` of the facts in scope."""
    return await _sums(
        session,
        scope,
        metric_facts,
        summary_facts,
        ["day", *dims, "measure"],
        "value",
        lambda t: _measures(t.c.measure, measures),
    )


async def hourly_sums(
    session: AsyncSession, scope: Scope, *, dims: Sequence[str], measures: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, hour, measure, sum)`` of the hourly facts in scope."""
    return await _sums(
        session,
        scope,
        metric_hourly,
        summary_hourly,
        ["day", *dims, "hour", "measure"],
        "value",
        lambda t: _measures(t.c.measure, measures),
    )


async def histogram_sums(
    session: AsyncSession, scope: Scope, *, dims: Sequence[str], kind: str
) -> list[tuple[Any, ...]]:
    """Rows ``(day, *dims, bucket, count)`` of one duration histogram in scope. Summaries carry no hours:
    by hour, only locally projected days count."""
    national = None if "hour" in dims else summary_histogram
    return await _sums(
        session,
        scope,
        duration_histogram,
        national,
        ["day", *dims, "bucket"],
        "count",
        lambda t: t.c.kind == kind,
    )


# --- late applications --------------------------------------------------------------------------


async def add_late(session: AsyncSession, late: Iterable[LateApplication]) -> None:
    """Record applications finished late; an application already recorded keeps its first row."""
    rows = [r._asdict() for r in sorted(late)]
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
