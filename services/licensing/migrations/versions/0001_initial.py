"""Applications, permit sequences, idempotency keys and the runtime tables.

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
        "applications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tracking_code", sa.String(16), nullable=False, unique=True),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("applicant_ref", sa.String(64), nullable=False),
        sa.Column("applicant_name", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("documents", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True)),
        sa.Column("approved_by", sa.String(128)),
        sa.Column("permit_number", sa.String(64), unique=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_applications_scope", "applications", ["agency", "site", "status"])
    op.create_table(
        "permit_sequences",
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
    )
    runtime_tables_v1(op)


def downgrade() -> None:
    for table in (
        "consumer_offsets",
        "inbox",
        "outbox",
        "idempotency_keys",
        "permit_sequences",
        "applications",
    ):
        op.drop_table(table)
