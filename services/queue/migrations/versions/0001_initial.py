"""The runtime tables (outbox, inbox, consumer offsets).

Revision ID: 0001
Revises:
"""

from alembic import op

from mpp.kit.migrations import runtime_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    runtime_tables_v1(op)


def downgrade() -> None:
    for table in ("consumer_offsets", "inbox", "outbox"):
        op.drop_table(table)
