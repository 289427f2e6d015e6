"""Reads of the dashboards at national scale: histogram roll-ups without agency or service type, per
month and site and for the whole nation per day and per month (a site's, a region's or the nation's
percentiles merge far fewer buckets), and covering indexes so a site's months and the edge days of a
national range are read from an index alone.

The projector keeps the new roll-ups in the same transaction as the daily rows from now on; here they are
filled once from the roll-ups already held (equal to the sums of their days).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (index, table, key columns, included columns); a name already used by 0005 is rebuilt with the
# columns the reads need, so they need not visit the table.
_COVERING = (
    (
        "ix_metric_facts_monthly_site_month",
        "metric_facts_monthly",
        ["site", "month"],
        ["agency", "service_type", "measure", "value"],
    ),
    (
        "ix_duration_histogram_monthly_site_month",
        "duration_histogram_monthly",
        ["site", "month"],
        ["agency", "service_type", "kind", "bucket", "count"],
    ),
    (
        "ix_metric_facts_national_daily_day_measure",
        "metric_facts_national_daily",
        ["day", "measure"],
        ["agency", "service_type", "value"],
    ),
    (
        "ix_duration_histogram_national_daily_kind_day",
        "duration_histogram_national_daily",
        ["kind", "day"],
        ["agency", "service_type", "bucket", "count"],
    ),
)
# (roll-up, time column, source): every site, agency and service type summed.
_TOTALS = (
    ("duration_histogram_total_daily", "day", "duration_histogram_national_daily"),
    ("duration_histogram_total_monthly", "month", "duration_histogram_national_monthly"),
)
_REBUILT = ("ix_metric_facts_monthly_site_month", "ix_duration_histogram_monthly_site_month")


def upgrade() -> None:
    op.create_table(
        "duration_histogram_site_monthly",
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("site", "month", "kind", "bucket", postgresql_include=["count"]),
    )
    op.execute(
        "INSERT INTO duration_histogram_site_monthly (site, month, kind, bucket, count) "
        "SELECT site, month, kind, bucket, sum(count) FROM duration_histogram_monthly "
        "GROUP BY site, month, kind, bucket"
    )
    for name, time, source in _TOTALS:
        op.create_table(
            name,
            sa.Column(time, sa.Date, primary_key=True),
            sa.Column("kind", sa.String(16), primary_key=True),
            sa.Column("bucket", sa.Integer, primary_key=True),
            sa.Column("count", sa.BigInteger, nullable=False),
        )
        op.execute(
            f"INSERT INTO {name} ({time}, kind, bucket, count) "  # noqa: S608 - this file's own names
            f"SELECT {time}, kind, bucket, sum(count) FROM {source} GROUP BY {time}, kind, bucket"
        )
    for name, table, keys, included in _COVERING:
        if name in _REBUILT:
            op.drop_index(name, table_name=table)
        op.create_index(name, table, keys, postgresql_include=included)


def downgrade() -> None:
    for name, table, keys, _included in reversed(_COVERING):
        op.drop_index(name, table_name=table)
        if name in _REBUILT:
            op.create_index(name, table, keys)
    for name, *_ in reversed(_TOTALS):
        op.drop_table(name)
    op.drop_table("duration_histogram_site_monthly")
