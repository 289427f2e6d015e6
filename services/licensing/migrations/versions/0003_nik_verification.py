"""Applications wait for the identity service to verify the applicant's NIK before their workflow starts.

The verification request id matches identity's answer to its application; a refusal's reason is kept.

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
    op.add_column("applications", sa.Column("verification_request_id", sa.String(64)))
    op.add_column("applications", sa.Column("nik_failure_reason", sa.String(500)))
    op.create_index(
        "ux_applications_verification_request_id",
        "applications",
        ["verification_request_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_applications_verification_request_id", table_name="applications")
    op.drop_column("applications", "nik_failure_reason")
    op.drop_column("applications", "verification_request_id")
