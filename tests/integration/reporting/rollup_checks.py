"""Whether every roll-up equals the sums of its days: shared by the roll-up and rebuild tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.reporting.persistence.tables import (
    BLOCK_BUCKETS,
    BLOCK_COUNTS,
    duration_histogram,
    duration_histogram_monthly,
    duration_histogram_national_daily,
    duration_histogram_national_monthly,
    duration_histogram_site_blocks,
    duration_histogram_total_daily,
    duration_histogram_total_monthly,
    metric_facts,
    metric_facts_monthly,
    metric_facts_national_daily,
    metric_facts_national_monthly,
    metric_facts_site_monthly,
)

# (roll-up, source, time column of the roll-up, key columns kept, value column)
ROLLUPS = (
    (metric_facts_monthly, metric_facts, "month", ("site", "agency", "service_type", "measure"), "value"),
    (metric_facts_national_daily, metric_facts, "day", ("agency", "service_type", "measure"), "value"),
    (metric_facts_national_monthly, metric_facts, "month", ("agency", "service_type", "measure"), "value"),
    (metric_facts_site_monthly, metric_facts, "month", ("site", "measure"), "value"),
    (metric_facts_site_monthly, metric_facts, "month", ("site", "measure"), "paired"),
    (
        duration_histogram_monthly,
        duration_histogram,
        "month",
        ("site", "agency", "service_type", "kind", "bucket"),
        "count",
    ),
    (
        duration_histogram_national_daily,
        duration_histogram,
        "day",
        ("agency", "service_type", "kind", "bucket"),
        "count",
    ),
    (
        duration_histogram_national_monthly,
        duration_histogram,
        "month",
        ("agency", "service_type", "kind", "bucket"),
        "count",
    ),
    # 16 buckets to a row: compared bucket by bucket (bucket_rows).
    (duration_histogram_site_blocks, duration_histogram, "month", ("site", "kind", "bucket"), "count"),
    (duration_histogram_total_daily, duration_histogram, "day", ("kind", "bucket"), "count"),
    (duration_histogram_total_monthly, duration_histogram, "month", ("kind", "bucket"), "count"),
)


async def rollup_differences(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """Roll-up rows that differ from the sum of their days."""
    problems = []
    async with sessions() as session:
        dialect = session.get_bind().dialect.name
        for rollup, source, time, keys, value in ROLLUPS:
            if time == "month":
                month = (
                    func.date(source.c.day, "start of month")
                    if dialect == "sqlite"
                    else func.cast(func.date_trunc("month", source.c.day), rollup.c.month.type)
                )
                when = month.label("t")
            else:
                when = source.c.day.label("t")
            group = [when, *(source.c[k] for k in keys)]
            expected = {
                tuple(str(x) for x in row[:-1]): int(row[-1])
                for row in (await session.execute(select(*group, func.sum(source.c[value])).group_by(*group)))
            }
            if "block" in rollup.c:
                actual = await bucket_rows(session, rollup)
            else:
                actual = {
                    tuple(str(x) for x in row[:-1]): int(row[-1])
                    for row in await session.execute(
                        select(rollup.c[time], *(rollup.c[k] for k in keys), rollup.c[value])
                    )
                }
            if not expected:
                problems.append(f"{source.name} is empty")
            if actual != expected:
                problems.append(f"{rollup.name}: {len(actual)} rows, expected {len(expected)}")
    return problems


async def bucket_rows(session: Any, blocks: Any) -> dict[tuple[str, ...], int]:
    """The buckets with a count of a roll-up of 16 buckets to a row, as (month, site, kind, bucket)."""
    out: dict[tuple[str, ...], int] = {}
    for row in await session.execute(select(blocks)):
        for i, column in enumerate(BLOCK_COUNTS):
            count = int(row._mapping[column])
            if count:
                key = (str(row.month), row.site, row.kind, str(row.block * BLOCK_BUCKETS + i))
                out[key] = count
    return out
