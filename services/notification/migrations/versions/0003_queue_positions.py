"""The notification service's copy of the queues: waiting tickets and whether their citizen was told
that the ticket is almost called.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "queue_tickets",
        sa.Column("ticket_id", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False, comment="local day of the site"),
        sa.Column("visit_id", sa.String(64), nullable=True),
        sa.Column("ticket_number", sa.String(16), nullable=True),
        sa.Column("rank_ms", sa.BigInteger, nullable=False, comment="call order key (smaller first)"),
        sa.Column("issued_at", TZ, nullable=True),
        sa.Column("left_at", TZ, nullable=True, comment="called, cancelled, no-show or transferred"),
        sa.Column("waiting", sa.Boolean, nullable=False),
        sa.Column("alerted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_queue_tickets_waiting", "queue_tickets", ["site", "service_type", "day", "waiting", "rank_ms"]
    )
    op.create_index("ix_queue_tickets_day", "queue_tickets", ["day"])


def downgrade() -> None:
    op.drop_index("ix_queue_tickets_day", table_name="queue_tickets")
    op.drop_index("ix_queue_tickets_waiting", table_name="queue_tickets")
    op.drop_table("queue_tickets")
