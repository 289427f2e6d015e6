"""Cheaper rows for the projector to write: bytewise code columns and one index fewer on four roll-ups.

On PostgreSQL the code columns of the metric read models and their roll-ups (site, agency, service type,
measure, histogram kind) compare bytewise (``COLLATE "C"``) instead of by the database's C.UTF-8 locale:
every index descent and every sort of a batch's upserts compares these codes. For ASCII codes both orders
are the same, so no figure and no ordering changes.

The roll-ups that pages read by site (``*_monthly``) or by day and measure or kind (``*_national_daily``)
are keyed in that order, and their key's index also holds the value (``INCLUDE``): it answers those reads
alone, as the covering indexes of 0007 did, and those indexes are dropped, so each upsert maintains one
index instead of two. On SQLite the covering indexes are dropped too (there they were plain indexes led
by the site, or by the day that the key already leads with) and the keys keep their order.

Those two ``*_monthly`` roll-ups also get a block-range (BRIN) index on the month, so every site's rows
of a few months (a region's figures over a quarter) are found without reading every month held, as the
key led by the month found them before; the projector writes months in order, so the index stays tight
and costs next to nothing to keep up. (SQLite has no BRIN: there it is a plain index on the month.)

Every index of these tables is rebuilt: on a large database this takes a while, once.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# table -> its code columns and their lengths
_CODES = {
    "metric_facts": {"site": 64, "agency": 64, "service_type": 64, "measure": 64},
    "metric_hourly": {"site": 64, "agency": 64, "service_type": 64, "measure": 64},
    "duration_histogram": {"site": 64, "agency": 64, "service_type": 64, "kind": 16},
    "metric_facts_monthly": {"site": 64, "agency": 64, "service_type": 64, "measure": 64},
    "metric_facts_national_daily": {"agency": 64, "service_type": 64, "measure": 64},
    "metric_facts_national_monthly": {"agency": 64, "service_type": 64, "measure": 64},
    "duration_histogram_monthly": {"site": 64, "agency": 64, "service_type": 64, "kind": 16},
    "duration_histogram_national_daily": {"agency": 64, "service_type": 64, "kind": 16},
    "duration_histogram_national_monthly": {"agency": 64, "service_type": 64, "kind": 16},
    "duration_histogram_site_monthly": {"site": 64, "kind": 16},
    "duration_histogram_total_daily": {"kind": 16},
    "duration_histogram_total_monthly": {"kind": 16},
}
# (table, covering index of 0007 with its columns and included columns, key before, key after, value)
_REKEYED = (
    (
        "metric_facts_monthly",
        "ix_metric_facts_monthly_site_month",
        ["site", "month"],
        ["agency", "service_type", "measure", "value"],
        "month, site, agency, service_type, measure",
        "site, month, agency, service_type, measure",
        "value",
    ),
    (
        "duration_histogram_monthly",
        "ix_duration_histogram_monthly_site_month",
        ["site", "month"],
        ["agency", "service_type", "kind", "bucket", "count"],
        "month, site, agency, service_type, kind, bucket",
        "site, month, agency, service_type, kind, bucket",
        "count",
    ),
    (
        "metric_facts_national_daily",
        "ix_metric_facts_national_daily_day_measure",
        ["day", "measure"],
        ["agency", "service_type", "value"],
        "day, agency, service_type, measure",
        "day, measure, agency, service_type",
        "value",
    ),
    (
        "duration_histogram_national_daily",
        "ix_duration_histogram_national_daily_kind_day",
        ["kind", "day"],
        ["agency", "service_type", "bucket", "count"],
        "day, agency, service_type, kind, bucket",
        "kind, day, agency, service_type, bucket",
        "count",
    ),
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _collate(collation: str) -> None:
    for table, columns in _CODES.items():
        changes = ", ".join(
            f'ALTER COLUMN {c} TYPE varchar({n}) COLLATE "{collation}"' for c, n in columns.items()
        )
        op.execute(f"ALTER TABLE {table} {changes}")


_BY_MONTH = ("metric_facts_monthly", "duration_histogram_monthly")


def upgrade() -> None:
    for table, index, *_rest in _REKEYED:
        op.drop_index(index, table_name=table)
    for table in _BY_MONTH:
        op.create_index(f"ix_{table}_month", table, ["month"], postgresql_using="brin")
    if not _postgres():
        return
    # The keys are rebuilt once, after the columns' collation changed (which rebuilds every index left).
    for table, *_rest in _REKEYED:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
    _collate("C")
    for table, _index, _columns, _included, _before, after, value in _REKEYED:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({after}) INCLUDE ({value})")


def downgrade() -> None:
    for table in _BY_MONTH:
        op.drop_index(f"ix_{table}_month", table_name=table)
    if _postgres():
        for table, *_rest in _REKEYED:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        _collate("default")
        for table, _index, _columns, _included, before, _after, _value in _REKEYED:
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({before})")
    for table, index, columns, included, *_rest in _REKEYED:
        op.create_index(index, table, columns, postgresql_include=included)
