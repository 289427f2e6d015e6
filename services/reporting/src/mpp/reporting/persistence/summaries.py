"""Queries of the national roll-up: what a site deployment publishes, and what a national one keeps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.db import dialect_insert
from mpp.reporting.domain.facts import NONE, PAIRED
from mpp.reporting.domain.summary import FactRow, HistogramRow, HourRow, NationalRows
from mpp.reporting.persistence.tables import (
    duration_histogram,
    metric_facts,
    metric_hourly,
    summary_days,
    summary_facts,
    summary_histogram,
    summary_histogram_hourly,
    summary_hourly,
    summary_state,
)

# --- site mode -------------------------------------------------------------------------------------


async def mark_changed(session: AsyncSession, keys: Iterable[tuple[str, date]]) -> None:
    """Count one change of each (site, day) whose figures a batch touched (in the batch's transaction)."""
    rows = [
        {"site": site, "day": day, "changes": 1, "seen": 0, "revision": 0, "final": False}
        for site, day in sorted(set(keys))
    ]
    if not rows:
        return
    stmt = dialect_insert(session, summary_state).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[summary_state.c.site, summary_state.c.day],
        set_={"changes": summary_state.c.changes + 1},
    )
    await session.execute(stmt)


async def seed_state(session: AsyncSession, sites: frozenset[str]) -> None:
    """Note every day the read models hold for ``sites`` that has no publication state yet (a site newly
    published, or read models filled before publishing existed), so its history is published once."""
    f, t = metric_facts, summary_state
    days = (
        select(f.c.site, f.c.day, literal(1), literal(0), literal(0), literal(False))
        .where(f.c.site.in_(sorted(sites)))
        .distinct()
    )
    stmt = dialect_insert(session, t).from_select(
        ["site", "day", "changes", "seen", "revision", "final"], days
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[t.c.site, t.c.day]))


async def pending_days(session: AsyncSession, sites: frozenset[str]) -> list[tuple[str, date]]:
    """Days of ``sites`` changed since their last summary, or not yet published as final."""
    t = summary_state
    q = (
        select(t.c.site, t.c.day)
        .where(t.c.site.in_(sorted(sites)), (t.c.changes > t.c.seen) | (t.c.final.is_(False)))
        .order_by(t.c.day, t.c.site)
    )
    return [(r.site, r.day) for r in (await session.execute(q)).all()]


@dataclass(frozen=True, slots=True)
class StateRow:
    changes: int
    seen: int
    revision: int
    final: bool
    digest: str | None


async def lock_state(session: AsyncSession, site: str, day: date) -> StateRow | None:
    """The publication state of a day, locked for this transaction; none while another publisher holds it."""
    t = summary_state
    q = (
        select(t.c.changes, t.c.seen, t.c.revision, t.c.final, t.c.digest)
        .where(t.c.site == site, t.c.day == day)
        .with_for_update(skip_locked=True)
    )
    row = (await session.execute(q)).first()
    if row is None:
        return None
    return StateRow(int(row.changes), int(row.seen), int(row.revision), bool(row.final), row.digest)


async def save_state(
    session: AsyncSession,
    site: str,
    day: date,
    *,
    seen: int,
    revision: int,
    final: bool,
    digest: str,
    published_at: datetime | None,
) -> None:
    t = summary_state
    values: dict[str, Any] = {"seen": seen, "revision": revision, "final": final, "digest": digest}
    if published_at is not None:
        values["published_at"] = published_at
    await session.execute(update(t).where(t.c.site == site, t.c.day == day).values(**values))


@dataclass(slots=True)
class DayRows:
    facts: list[FactRow]
    visits_by_hour: dict[int, int]
    histograms: list[HistogramRow]
    hourly: list[HourRow]
    """Tickets issued per service and local hour."""


async def day_rows(session: AsyncSession, site: str, day: date) -> DayRows:
    """One site's day as held in the local read models (histograms per hour)."""
    f = metric_facts
    facts = []
    for r in (
        await session.execute(
            select(f.c.agency, f.c.service_type, f.c.measure, f.c.value, f.c.paired).where(
                f.c.site == site, f.c.day == day
            )
        )
    ).all():
        facts.append(FactRow(r.agency, r.service_type, r.measure, int(r.value)))
        # The second measure of a pair, held in its first's row: a row of its own unless never added.
        second = PAIRED.get(r.measure)
        if second is not None and r.paired:
            facts.append(FactRow(r.agency, r.service_type, second, int(r.paired)))
    h = metric_hourly
    visits: dict[int, int] = {}
    hourly = []
    for r in (
        await session.execute(
            select(h.c.agency, h.c.service_type, h.c.hour, h.c.measure, h.c.value).where(
                h.c.site == site, h.c.day == day, h.c.measure.in_(("visits", "tickets_issued"))
            )
        )
    ).all():
        if r.measure == "visits" and r.agency == NONE and r.service_type == NONE:
            visits[int(r.hour)] = visits.get(int(r.hour), 0) + int(r.value)
        elif r.measure == "tickets_issued":
            hourly.append(HourRow(r.agency, r.service_type, int(r.hour), r.measure, int(r.value)))
    d = duration_histogram
    histograms = [
        HistogramRow(r.agency, r.service_type, r.kind, int(r.bucket), int(r.total), int(r.hour))
        for r in (
            await session.execute(
                select(
                    d.c.agency, d.c.service_type, d.c.kind, d.c.bucket, d.c.count.label("total"), d.c.hour
                ).where(d.c.site == site, d.c.day == day)
            )
        ).all()
    ]
    return DayRows(facts, visits, histograms, hourly)


# --- national mode ---------------------------------------------------------------------------------


async def stored_revision(session: AsyncSession, site: str, day: date) -> int | None:
    """The revision of a site's day held nationally, locked until the transaction ends."""
    t = summary_days
    q = select(t.c.revision).where(t.c.site == site, t.c.day == day).with_for_update()
    value = (await session.execute(q)).scalar_one_or_none()
    return None if value is None else int(value)


async def replace_summary(
    session: AsyncSession,
    *,
    site: str,
    day: date,
    record: dict[str, Any],
    rows: NationalRows,
) -> None:
    """Replace everything held for a site's day by one summary's rows."""
    for table in (summary_facts, summary_hourly, summary_histogram, summary_histogram_hourly):
        await session.execute(delete(table).where(table.c.site == site, table.c.day == day))
    base = {"day": day, "site": site}
    if rows.facts:
        await session.execute(
            insert(summary_facts),
            [
                {**base, "agency": a, "service_type": st, "measure": m, "value": v}
                for (a, st, m), v in sorted(rows.facts.items())
            ],
        )
    if rows.hourly:
        await session.execute(
            insert(summary_hourly),
            [
                {**base, "agency": a, "service_type": st, "hour": h, "measure": m, "value": v}
                for (a, st, h, m), v in sorted(rows.hourly.items())
            ],
        )
    if rows.histogram:
        await session.execute(
            insert(summary_histogram),
            [
                {**base, "agency": a, "service_type": st, "kind": k, "bucket": b, "count": n}
                for (a, st, k, b), n in sorted(rows.histogram.items())
            ],
        )
    if rows.histogram_hourly:
        await session.execute(
            insert(summary_histogram_hourly),
            [
                {**base, "agency": a, "service_type": st, "hour": h, "kind": k, "bucket": b, "count": n}
                for (a, st, h, k, b), n in sorted(rows.histogram_hourly.items())
            ],
        )
    t = summary_days
    values = {"site": site, "day": day, **record}
    stmt = dialect_insert(session, t).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.site, t.c.day], set_={k: stmt.excluded[k] for k in record}
    )
    await session.execute(stmt)


async def summary_regions(session: AsyncSession) -> dict[str, tuple[str, str]]:
    """(kab/kota, province) of every site with a summary held, as its summaries state them."""
    t = summary_days
    q = select(t.c.site, t.c.kabkota, t.c.province).group_by(t.c.site, t.c.kabkota, t.c.province)
    return {r.site: (r.kabkota, r.province) for r in (await session.execute(q)).all()}
