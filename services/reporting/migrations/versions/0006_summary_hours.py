"""National roll-up: the duration histograms of daily summaries per hour of day (D1, D2 by hour).

Summaries from this version on also carry visits and applications per channel, tickets transferred in,
priority tickets issued, anonymous complaints, complaints per service type, the working days of civil
registry documents and tickets issued per hour: those land in the existing ``summary_facts`` and
``summary_hourly``. Days already held keep their figures until their sites republish them. The projector
keeps the complaint figures per channel, category and class under their service type (and counts the
anonymous ones there) from this version on; days projected earlier publish them after a rebuild of the
read models.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "summary_histogram_hourly",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
        sa.Column("hour", sa.SmallInteger, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_summary_histogram_hourly_site_day", "summary_histogram_hourly", ["site", "day"])


def downgrade() -> None:
    op.drop_index("ix_summary_histogram_hourly_site_day", table_name="summary_histogram_hourly")
    op.drop_table("summary_histogram_hourly")
