"""Visits, tickets, daily ticket sequences, counters, ordering policies and idempotency keys.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "visits",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("tickets_total", sa.Integer, nullable=False),
        sa.Column("tickets_served", sa.Integer, nullable=False),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("visit_id", sa.String(36), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(3), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("number", sa.String(8), nullable=False),
        sa.Column("priority_group", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("issued_at", TZ, nullable=False),
        sa.Column("queued_at", TZ, nullable=False),
        sa.Column("rank", sa.BigInteger, nullable=False),
        sa.Column("call_count", sa.Integer, nullable=False),
        sa.Column("first_called_at", TZ),
        sa.Column("called_at", TZ),
        sa.Column("counter", sa.String(64)),
        sa.Column("officer", sa.String(128)),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
        sa.Column("transferred_from", sa.String(36)),
        sa.Column("transferred_to", sa.String(36)),
        sa.Column("decision", sa.JSON),
        sa.UniqueConstraint("site", "day", "number", name="uq_tickets_site_day_number"),
    )
    op.create_index("ix_tickets_waiting", "tickets", ["site", "service_type", "state", "rank", "seq"])
    op.create_index("ix_tickets_visit", "tickets", ["visit_id"])
    op.create_index("ix_tickets_counter", "tickets", ["site", "counter", "state"])
    op.create_table(
        "ticket_sequences",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("prefix", sa.String(3), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "counters",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("service_types", sa.JSON, nullable=False),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("opened_at", TZ),
        sa.Column("opened_by", sa.String(128)),
        sa.Column("planned", sa.Boolean, nullable=False),
        sa.Column("calls_since_priority", sa.Integer, nullable=False),
        sa.Column("tickets_served", sa.Integer, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "policies", "counters", "ticket_sequences", "tickets", "visits"):
        op.drop_table(table)
