"""Late applications: one row per application finished after its published standard (reference,
service type, due day, days late), listed on the dashboards' SLA section.

The rows come from finishing events already consumed, so the projector replays every topic from its
beginning once more: its consumed offsets and inbox are emptied together with every read model it fills,
so no figure counts an event twice.

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
        "late_applications",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("application_ref", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("finished_day", sa.Date, nullable=False),
        sa.Column("due_day", sa.Date, nullable=True),
        sa.Column("days_late", sa.Integer, nullable=True),
    )
    op.create_index("ix_late_applications_site_day", "late_applications", ["site", "finished_day"])
    for table in (
        "consumer_offsets",
        "inbox",
        "daily_counts",
        "metric_facts",
        "metric_hourly",
        "duration_histogram",
    ):
        op.execute(sa.table(table).delete())


def downgrade() -> None:
    op.drop_index("ix_late_applications_site_day", table_name="late_applications")
    op.drop_table("late_applications")
