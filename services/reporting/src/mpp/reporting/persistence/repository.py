"""Every reporting query lives here."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.db import dialect_insert
from mpp.reporting.domain.projection import CountKey
from mpp.reporting.persistence.tables import daily_counts


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
