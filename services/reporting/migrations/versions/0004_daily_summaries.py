"""National roll-up: publication state of a site's days and the national read models of summaries.

``summary_state`` (site mode) is filled by the publisher on its first round with every day the read models
already hold for the sites it publishes, so their whole history is published once. Complaint figures per
channel, category and class are projected from this version on; days projected earlier publish their
complaints after a rebuild of the read models.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "summary_state",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("changes", sa.BigInteger, nullable=False),
        sa.Column("seen", sa.BigInteger, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "summary_days",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kabkota", sa.String(8), nullable=False),
        sa.Column("province", sa.String(4), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("waiting_error", sa.Integer, nullable=False),
        sa.Column("service_error", sa.Integer, nullable=False),
    )
    op.create_table(
        "summary_facts",
        *_key_columns(),
        sa.Column("measure", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "summary_hourly",
        *_key_columns(),
        sa.Column("hour", sa.SmallInteger, primary_key=True),
        sa.Column("measure", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "summary_histogram",
        *_key_columns(),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    for table in ("summary_facts", "summary_hourly", "summary_histogram"):
        op.create_index(f"ix_{table}_site_day", table, ["site", "day"])


def downgrade() -> None:
    for table in ("summary_histogram", "summary_hourly", "summary_facts"):
        op.drop_index(f"ix_{table}_site_day", table_name=table)
        op.drop_table(table)
    op.drop_table("summary_days")
    op.drop_table("summary_state")
