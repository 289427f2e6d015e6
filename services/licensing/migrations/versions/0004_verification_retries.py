"""NIK verification is asked again: attempts, when the next request is due, and the pending request
(NIK included) sealed until identity settles it.

Applications already waiting keep ``verification_next_at`` empty: the sweep leaves them as they were.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("verification_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("applications", sa.Column("verification_next_at", sa.DateTime(timezone=True)))
    op.add_column("applications", sa.Column("verification_request", sa.LargeBinary()))
    op.create_index(
        "ix_applications_verification_next_at",
        "applications",
        ["verification_next_at"],
        postgresql_where=sa.text("verification_next_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_applications_verification_next_at", table_name="applications")
    op.drop_column("applications", "verification_request")
    op.drop_column("applications", "verification_next_at")
    op.drop_column("applications", "verification_attempts")
