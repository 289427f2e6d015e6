"""Civil registry document applications (KTP-el, KK, akta kelahiran) and their number serials.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_applications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tracking_code", sa.String(16), nullable=False, unique=True),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("applicant_ref", sa.String(34), nullable=False),
        sa.Column("subject_ref", sa.String(34)),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=False),
        sa.Column("documents", sa.JSON, nullable=False),
        sa.Column("details_enc", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("finished", sa.Boolean, nullable=False),
        sa.Column("pauses", sa.JSON, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("last_note", sa.Text),
        sa.Column("missing", sa.JSON, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True)),
        sa.Column("document_ref", sa.String(64), unique=True),
        sa.Column("document_number_enc", sa.LargeBinary),
        sa.Column("medium", sa.String(16)),
        sa.Column("working_days_elapsed", sa.Integer),
        sa.Column("within_sla", sa.Boolean),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_document_applications_queue",
        "document_applications",
        ["agency", "site", "status", "submitted_at"],
    )
    op.create_index("ix_document_applications_applicant", "document_applications", ["applicant_ref"])
    op.create_table(
        "document_serials",
        sa.Column("scope", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("document_serials")
    op.drop_index("ix_document_applications_applicant", table_name="document_applications")
    op.drop_index("ix_document_applications_queue", table_name="document_applications")
    op.drop_table("document_applications")
