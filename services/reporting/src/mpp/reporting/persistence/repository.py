"""Every reporting query lives here."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mpp.kit.db import dialect_insert
from mpp.reporting.domain.projection import CountKey
from mpp.reporting.persistence.tables import daily_counts


async def add_counts(session: AsyncSession, counts: Counter[CountKey]) -> None:
    """Add increments to the daily counts, one upsert statement per batch."""
    if not counts:
        return
    rows = [
        {
            "day": k.day,
            "site": k.site,
            "agency": k.agency,
            "service_type": k.service_type,
            "metric": k.metric,
            "count": n,
        }
        for k, n in sorted(
            counts.items(),
            key=lambda kv: (kv[0].day, kv[0].site, kv[0].agency, kv[0].service_type, kv[0].metric),
        )
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
