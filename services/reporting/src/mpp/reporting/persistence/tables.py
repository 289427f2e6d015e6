"""Reporting read models. They hold codes, counts and sums only: no personal data.

``daily_counts`` is the first projection (applications submitted and permits issued) behind
``/v1/figures``; the metric read models behind ``/v1/metrics`` are:

* ``metric_facts`` - one additive measure (or a pair of measures always added together) per local day x
  site x agency x service type;
* ``metric_hourly`` - the same per local hour of the day (visits, tickets issued);
* ``duration_histogram`` - waiting and service time counts per 10-second bucket and hour;
* ``late_applications`` - one row per application finished after its published standard (its reference,
  service type, due day and days late: the SLA list of the dashboards).

Coarser roll-ups of the same facts, kept by the projector in the same transaction as the daily rows,
answer long periods without summing every day (see ``repository.Grain``):

* ``metric_facts_monthly`` and ``duration_histogram_monthly`` - per calendar month (of local days) x
  site x agency x service type (the histogram without the hour);
* ``metric_facts_site_monthly`` and ``duration_histogram_site_blocks`` - per calendar month x site,
  every agency and service type summed (the histogram 16 buckets to a row);
* ``metric_facts_national_daily`` / ``_national_monthly`` and ``duration_histogram_national_daily`` /
  ``_national_monthly`` - every site summed, per day and per month.

A national deployment also holds the ``summary_*`` read models of the sites' daily summaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
)

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


def _code(length: int, *, collated: bool) -> String:
    """A code column (site, agency, service type, measure, histogram kind). The projector's read models
    compare theirs bytewise on PostgreSQL (``COLLATE "C"``, migration 0008_write_costs): the same order
    as the database's C.UTF-8 for these ASCII codes, without a locale's string comparison in every
    index descent and sort of a batch's upserts. SQLite compares bytewise already."""
    if not collated:
        return String(length)
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# Key columns (a local day or month; the site, unless every site is summed; agency; service type) and the
# shapes of the read models built on them: the daily ones, their roll-ups and the national summaries'.
def _keys(time: str, *, site: bool, collated: bool = True) -> list[Column[Any]]:
    columns: list[Column[Any]] = [Column(time, Date, primary_key=True)]
    if site:
        columns.append(Column("site", _code(64, collated=collated), primary_key=True))
    return [
        *columns,
        Column("agency", _code(64, collated=collated), primary_key=True),
        Column("service_type", _code(64, collated=collated), primary_key=True),
    ]


def _facts_table(
    name: str,
    time: str,
    *,
    site: bool,
    collated: bool = True,
    key: Sequence[str] | None = None,
    paired: bool = True,
    storage: dict[str, int] | None = None,
) -> Table:
    """A measure per key; ``key`` orders the primary key (which then also holds the values, so reads led
    by its first columns need no other index), the columns' own order by default.

    With ``paired`` (the projector's read models, migration 0009_paired_measures), the row of the first
    measure of a pair (``facts.PAIRED``: ``waiting_count``) also holds the second's value in ``paired``
    (the ``waiting_seconds_sum`` of the same key), which then has no row of its own; other rows hold 0
    there. One row instead of two for measures always added together: half the rows and index entries
    to write for them."""
    values = ["value", "paired"] if paired else ["value"]
    extra = [PrimaryKeyConstraint(*key, postgresql_include=values)] if key else []
    return Table(
        name,
        metadata,
        *_keys(time, site=site, collated=collated),
        Column("measure", _code(64, collated=collated), primary_key=True),
        Column("value", BigInteger, nullable=False),
        *([Column("paired", BigInteger, nullable=False, server_default="0")] if paired else []),
        *extra,
        postgresql_with=storage or {},
    )


def _histogram_table(
    name: str, time: str, *, site: bool, collated: bool = True, key: Sequence[str] | None = None
) -> Table:
    """A bucket count per key (``key`` as in :func:`_facts_table`)."""
    extra = [PrimaryKeyConstraint(*key, postgresql_include=["count"])] if key else []
    return Table(
        name,
        metadata,
        *_keys(time, site=site, collated=collated),
        Column("kind", _code(16, collated=collated), primary_key=True),
        Column("bucket", Integer, primary_key=True),
        Column("count", BigInteger, nullable=False),
        *extra,
    )


def _hourly_table(name: str, *, collated: bool = True, storage: dict[str, int] | None = None) -> Table:
    return Table(
        name,
        metadata,
        *_keys("day", site=True, collated=collated),
        Column("hour", SmallInteger, primary_key=True),
        Column("measure", _code(64, collated=collated), primary_key=True),
        Column("value", BigInteger, nullable=False),
        postgresql_with=storage or {},
    )


# Migration 0013_room_for_updates: the daily read models leave room on each page for their rows' next
# versions, which then need no new index entries.
ROOM_FOR_UPDATES = {"fillfactor": 70}

metric_facts = _facts_table("metric_facts", "day", site=True, storage=ROOM_FOR_UPDATES)

metric_hourly = _hourly_table("metric_hourly", storage=ROOM_FOR_UPDATES)

duration_histogram = Table(
    "duration_histogram",
    metadata,
    *_keys("day", site=True),
    Column("hour", SmallInteger, primary_key=True),
    Column("kind", _code(16, collated=True), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
    postgresql_with=ROOM_FOR_UPDATES,
)

late_applications = Table(
    "late_applications",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("application_ref", String(64), primary_key=True),
    Column("agency", String(64), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("finished_day", Date, nullable=False),
    Column("due_day", Date, nullable=True),
    Column("days_late", Integer, nullable=True),
)
Index("ix_late_applications_site_day", late_applications.c.site, late_applications.c.finished_day)

for _table in (metric_facts, metric_hourly, duration_histogram):
    Index(f"ix_{_table.name}_site_day", _table.c.site, _table.c.day)

# --- roll-ups of the metric read models (migration 0005_rollups) -----------------------------------


# Migration 0008_write_costs: the roll-ups that pages read by site, or by day and measure (kind), are
# keyed in that order and hold their value in the key's index, which answers those reads alone (no second,
# covering index to maintain on every write).
metric_facts_monthly = _facts_table(
    "metric_facts_monthly",
    "month",
    site=True,
    key=("site", "month", "agency", "service_type", "measure"),
)
metric_facts_national_daily = _facts_table(
    "metric_facts_national_daily",
    "day",
    site=False,
    key=("day", "measure", "agency", "service_type"),
)
metric_facts_national_monthly = _facts_table("metric_facts_national_monthly", "month", site=False)
duration_histogram_monthly = _histogram_table(
    "duration_histogram_monthly",
    "month",
    site=True,
    key=("site", "month", "agency", "service_type", "kind", "bucket"),
)
duration_histogram_national_daily = _histogram_table(
    "duration_histogram_national_daily",
    "day",
    site=False,
    key=("kind", "day", "agency", "service_type", "bucket"),
)
duration_histogram_national_monthly = _histogram_table(
    "duration_histogram_national_monthly", "month", site=False
)
# Every site's rows of a few months (a region's or each site's figures over a short period), without
# reading every month held: a block-range index, next to nothing to keep up as months arrive in order.
for _table in (metric_facts_monthly, duration_histogram_monthly):
    Index(f"ix_{_table.name}_month", _table.c.month, postgresql_using="brin")

# --- per-site histogram roll-up (migrations 0007_page_reads and 0011_histogram_blocks) ----------------

BLOCK_BUCKETS = 16
"""Buckets per row of :data:`duration_histogram_site_blocks`: bucket ``b`` is counted in block
``b // 16``, column ``c{b % 16}``."""
BLOCK_COUNTS = tuple(f"c{i}" for i in range(BLOCK_BUCKETS))

duration_histogram_site_blocks = Table(
    "duration_histogram_site_blocks",
    metadata,
    Column("site", _code(64, collated=True)),
    Column("month", Date),
    Column("kind", _code(16, collated=True)),
    Column("block", Integer),
    *(Column(name, Integer, nullable=False, server_default="0") for name in BLOCK_COUNTS),
    PrimaryKeyConstraint("site", "month", "kind", "block"),
)
"""Per calendar month x site, every agency and service type summed, 16 consecutive 10-second buckets per
row (0 for a bucket without durations): a site's or a region's percentiles read a sixteenth of the rows
that one row per bucket would need (a year of 300 MPPs: 43,200 rows of one kind instead of
650,000), and the projector upserts a sixteenth of the keys. The counts are 32-bit: PostgreSQL sums
``integer`` into a ``bigint`` accumulator, twice as fast as ``bigint`` into its 128-bit or ``numeric``
one (a region's 16 sums per group are most of its statement), and one bucket of one site's month never
nears 2^31 durations (an upsert past it would fail, never wrap)."""


# --- per-site facts roll-up (migration 0010_site_facts) ------------------------------------------------

metric_facts_site_monthly = Table(
    "metric_facts_site_monthly",
    metadata,
    Column("site", _code(64, collated=True)),
    Column("month", Date),
    Column("measure", _code(64, collated=True)),
    Column("value", BigInteger, nullable=False),
    Column("paired", BigInteger, nullable=False, server_default="0"),
    # Led by the site and holding the values: one site's months are read from the index alone.
    PrimaryKeyConstraint("site", "month", "measure", postgresql_include=["value", "paired"]),
)
"""Per calendar month x site, every agency and service type summed (the ``paired`` column as in
:func:`_facts_table`): figures by site or by region, and a site's own, add up one row per site, month and
measure instead of one per service type of the site."""


def _total_histogram(name: str, time: str) -> Table:
    return Table(
        name,
        metadata,
        Column(time, Date, primary_key=True),
        Column("kind", _code(16, collated=True), primary_key=True),
        Column("bucket", Integer, primary_key=True),
        Column("count", BigInteger, nullable=False),
    )


duration_histogram_total_daily = _total_histogram("duration_histogram_total_daily", "day")
duration_histogram_total_monthly = _total_histogram("duration_histogram_total_monthly", "month")
"""Every site, agency and service type summed, per day and per month: the nation's percentiles."""

# --- national roll-up (migration 0004_daily_summaries) -----------------------------------------------

summary_state = Table(
    "summary_state",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("changes", BigInteger, nullable=False),
    Column("seen", BigInteger, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("digest", String(64), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
)
"""Site mode: per published site and local day, how often the projector changed its figures
(``changes``), how many of those changes the last summary saw, and the last revision published."""

summary_days = Table(
    "summary_days",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("revision", BigInteger, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Column("kabkota", String(8), nullable=False),
    Column("province", String(4), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("waiting_error", Integer, nullable=False),
    Column("service_error", Integer, nullable=False),
)
"""National mode: the revision of each site's day held in the ``summary_*`` read models."""

summary_facts = _facts_table("summary_facts", "day", site=True, collated=False, paired=False)
summary_hourly = _hourly_table("summary_hourly", collated=False)
summary_histogram = _histogram_table("summary_histogram", "day", site=True, collated=False)

# Migration 0006_summary_hours: the duration histograms of summaries that split them by hour of day.
summary_histogram_hourly = Table(
    "summary_histogram_hourly",
    metadata,
    *_keys("day", site=True, collated=False),
    Column("hour", SmallInteger, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

for _table in (summary_facts, summary_hourly, summary_histogram, summary_histogram_hourly):
    Index(f"ix_{_table.name}_site_day", _table.c.site, _table.c.day)

# --- roll-ups left to fill (migration 0012_rollups_pending) ------------------------------------------

rollups_pending = Table(
    "rollups_pending",
    metadata,
    Column("since", DateTime(timezone=True), primary_key=True),
)
"""A row while the roll-ups are not kept: a rebuild (PostgreSQL) writes only the daily read models, then
fills every roll-up from them once, at its end (``repository.fill_pending_rollups``), and deletes the row
in the same transaction. Until then, figures are read from the daily read models alone."""

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)

NOT_DERIVED = frozenset(
    {
        outbox.name,
        inbox.name,
        consumer_offsets.name,
        # Set by the rebuild when it empties the read models, cleared when it has filled the roll-ups.
        rollups_pending.name,
        # The publisher's own state: kept, so a rebuilt day is republished with a higher revision.
        summary_state.name,
        # Filled by the roll-up's aggregator from the summaries topic (its own consumer group), not by the
        # projector: a rebuild of the projection leaves them as they are.
        summary_days.name,
        summary_facts.name,
        summary_hourly.name,
        summary_histogram.name,
        summary_histogram_hourly.name,
    }
)
"""Tables that the projector does not fill from the domain topics. Every other table of ``metadata`` is a
read model, which ``python -m mpp.reporting rebuild`` empties and fills again from the topics: a table that
holds anything else must be named here."""


def read_models() -> list[Table]:
    """Every read model, in dependency order."""
    return [t for t in metadata.sorted_tables if t.name not in NOT_DERIVED]
