"""SKM survey invitations and answers, and complaints.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "survey_invitations",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("completed_at", TZ, nullable=False),
        sa.Column("closes_at", TZ, nullable=False),
        sa.Column("answered_at", TZ),
        sa.UniqueConstraint("ticket_id", name="uq_survey_invitations_ticket"),
    )
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        *(sa.Column(f"u{i}", sa.Integer) for i in range(1, 10)),
        sa.Column("sex", sa.String(16)),
        sa.Column("age_band", sa.String(16)),
        sa.Column("education", sa.String(32)),
        sa.Column("occupation", sa.String(32)),
        sa.Column("submitted_at", TZ, nullable=False),
    )
    op.create_index("ix_survey_responses_service", "survey_responses", ["site", "service_type"])
    op.create_table(
        "complaints",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tracking_code", sa.String(16), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("complaint_class", sa.String(32), nullable=False),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("complainant_ref", sa.String(64)),
        sa.Column("contact", sa.String(200)),
        sa.Column("agency", sa.String(64)),
        sa.Column("service_type", sa.String(64)),
        sa.Column("lapor_tracking_id", sa.String(64)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("received_by", sa.String(128), nullable=False),
        sa.Column("first_response_limit_days", sa.Integer, nullable=False),
        sa.Column("resolution_limit_days", sa.Integer, nullable=False),
        sa.Column("first_response_due", TZ, nullable=False),
        sa.Column("resolution_due", TZ, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("responded_at", TZ),
        sa.Column("responded_by", sa.String(128)),
        sa.Column("response", sa.Text),
        sa.Column("resolved_at", TZ),
        sa.Column("resolved_by", sa.String(128)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("resolution", sa.Text),
        sa.UniqueConstraint("tracking_code", name="uq_complaints_tracking_code"),
    )
    op.create_index("ix_complaints_open", "complaints", ["site", "state", "resolution_due"])


def downgrade() -> None:
    op.drop_index("ix_complaints_open", table_name="complaints")
    op.drop_table("complaints")
    op.drop_index("ix_survey_responses_service", table_name="survey_responses")
    op.drop_table("survey_responses")
    op.drop_table("survey_invitations")
