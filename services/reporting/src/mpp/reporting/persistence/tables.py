"""Reporting read models. They hold codes, counts and sums only: no personal data.

``daily_counts`` is the first projection (applications submitted and permits issued) behind
``/v1/figures``; the metric read models behind ``/v1/metrics`` are:

* ``metric_facts`` - one additive measure per local day x site x agency x service type;
* ``metric_hourly`` - the same per local hour of the day (visits, tickets issued);
* ``duration_histogram`` - waiting and service time counts per 10-second bucket and hour.
"""

from __future__ import annotations

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

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)

NOT_DERIVED = frozenset({outbox.name, inbox.name, consumer_offsets.name})
"""Tables that are not projected from events. Every other table of ``metadata`` is a read model, which
``python -m mpp.reporting rebuild`` empties and fills again from the topics: a table that holds anything
else must be named here."""


def read_models() -> list[Table]:
    """Every read model, in dependency order."""
    return [t for t in metadata.sorted_tables if t.name not in NOT_DERIVED]
