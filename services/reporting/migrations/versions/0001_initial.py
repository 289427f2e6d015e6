"""Daily counts read model and the runtime tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from mpp.kit.migrations import runtime_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_counts",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    runtime_tables_v1(op)


def downgrade() -> None:
    for table in ("consumer_offsets", "inbox", "outbox", "daily_counts"):
        op.drop_table(table)
