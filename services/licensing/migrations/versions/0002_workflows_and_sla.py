"""Applications follow their service type's workflow and carry an SLA clock.

``status`` now holds the workflow state code.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No production data exists yet; the server defaults only satisfy NOT NULL for any rows present.
    op.add_column("applications", sa.Column("workflow", sa.String(64), nullable=False, server_default=""))
    op.add_column("applications", sa.Column("pauses", sa.JSON, nullable=False, server_default="[]"))
    op.add_column("applications", sa.Column("due_at", sa.DateTime(timezone=True)))
    op.add_column("applications", sa.Column("at_risk_from", sa.DateTime(timezone=True)))
    op.add_column(
        "applications", sa.Column("finished", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("applications", sa.Column("issued_at", sa.DateTime(timezone=True)))
    op.add_column("applications", sa.Column("within_sla", sa.Boolean))
    op.add_column("applications", sa.Column("sla_breached_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_applications_open_due",
        "applications",
        ["due_at"],
        postgresql_where=sa.text("finished = false"),
    )


def downgrade() -> None:
    op.drop_index("ix_applications_open_due", table_name="applications")
    for column in (
        "sla_breached_at",
        "within_sla",
        "issued_at",
        "finished",
        "at_risk_from",
        "due_at",
        "pauses",
        "workflow",
    ):
        op.drop_column("applications", column)
