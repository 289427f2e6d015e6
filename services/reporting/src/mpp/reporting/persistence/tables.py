"""Reporting read models. They hold codes, counts and sums only: no personal data.

``daily_counts`` is the first projection (applications submitted and permits issued) behind
``/v1/figures``; the metric read models behind ``/v1/metrics`` are:

* ``metric_facts`` - one additive measure per local day x site x agency x service type;
* ``metric_hourly`` - the same per local hour of the day (visits, tickets issued);
* ``duration_histogram`` - waiting and service time counts per 10-second bucket and hour.

Coarser roll-ups of the same facts, kept by the projector in the same transaction as the daily rows,
answer long periods without summing every day (see ``repository.Grain``):

* ``metric_facts_monthly`` and ``duration_histogram_monthly`` - per calendar month (of local days) x
  site x agency x service type (the histogram without the hour);
* ``metric_facts_national_daily`` / ``_national_monthly`` and ``duration_histogram_national_daily`` /
  ``_national_monthly`` - every site summed, per day and per month.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Date, Index, Integer, MetaData, SmallInteger, String, Table

from mpp.kit.db import add_runtime_tables

metadata = MetaData()

daily_counts = Table(
    "daily_counts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("agency", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

metric_facts = Table(
    "metric_facts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("agency", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("measure", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

metric_hourly = Table(
    "metric_hourly",
    metadata,
    Column("day", Date, primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("agency", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("hour", SmallInteger, primary_key=True),
    Column("measure", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

duration_histogram = Table(
    "duration_histogram",
    metadata,
    Column("day", Date, primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("agency", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("hour", SmallInteger, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

for _table in (metric_facts, metric_hourly, duration_histogram):
    Index(f"ix_{_table.name}_site_day", _table.c.site, _table.c.day)


def _rollup_keys(time: str, *, site: bool) -> list[Column[Any]]:
    columns: list[Column[Any]] = [Column(time, Date, primary_key=True)]
    if site:
        columns.append(Column("site", String(64), primary_key=True))
    return [
        *columns,
        Column("agency", String(64), primary_key=True),
        Column("service_type", String(64), primary_key=True),
    ]


def _facts_rollup(name: str, time: str, *, site: bool) -> Table:
    return Table(
        name,
        metadata,
        *_rollup_keys(time, site=site),
        Column("measure", String(64), primary_key=True),
        Column("value", BigInteger, nullable=False),
    )


def _histogram_rollup(name: str, time: str, *, site: bool) -> Table:
    return Table(
        name,
        metadata,
        *_rollup_keys(time, site=site),
        Column("kind", String(16), primary_key=True),
        Column("bucket", Integer, primary_key=True),
        Column("count", BigInteger, nullable=False),
    )


metric_facts_monthly = _facts_rollup("metric_facts_monthly", "month", site=True)
metric_facts_national_daily = _facts_rollup("metric_facts_national_daily", "day", site=False)
metric_facts_national_monthly = _facts_rollup("metric_facts_national_monthly", "month", site=False)
duration_histogram_monthly = _histogram_rollup("duration_histogram_monthly", "month", site=True)
duration_histogram_national_daily = _histogram_rollup("duration_histogram_national_daily", "day", site=False)
duration_histogram_national_monthly = _histogram_rollup(
    "duration_histogram_national_monthly", "month", site=False
)

for _table in (metric_facts_monthly, duration_histogram_monthly):
    Index(f"ix_{_table.name}_site_month", _table.c.site, _table.c.month)

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)
