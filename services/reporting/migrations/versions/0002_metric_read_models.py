"""Metric read models: additive facts, hourly facts and duration histograms.

The projector now reads every event type the metrics need, from the start of each topic (topics keep
their events forever). Its consumed offsets, inbox and first read model are emptied here, so the next
start replays the whole log into every read model at once and none of them counts an event twice.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "metric_facts",
        *_key_columns(),
        sa.Column("measure", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "metric_hourly",
        *_key_columns(),
        sa.Column("hour", sa.SmallInteger, primary_key=True),
        sa.Column("measure", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "duration_histogram",
        *_key_columns(),
        sa.Column("hour", sa.SmallInteger, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    # Scoped reads filter on the site first; the primary keys lead with the day.
    for table in ("metric_facts", "metric_hourly", "duration_histogram"):
        op.create_index(f"ix_{table}_site_day", table, ["site", "day"])
    for table in ("consumer_offsets", "inbox", "daily_counts"):
        op.execute(sa.table(table).delete())


def downgrade() -> None:
    for table in ("duration_histogram", "metric_hourly", "metric_facts"):
        op.drop_index(f"ix_{table}_site_day", table_name=table)
        op.drop_table(table)
