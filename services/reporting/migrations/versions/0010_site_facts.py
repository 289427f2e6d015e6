"""Figures by site and by region over long periods: a per-site monthly roll-up of the facts without agency
or service type.

``metric_facts_site_monthly`` holds, per calendar month x site x measure, the sum over every agency and
service type of the site (and the ``paired`` column of 0009 summed alike). A year's figures by site, by
kab/kota or by province, and a site's own page, then add up one row per site, month and measure instead
of one per service type hosted: about fifteen times fewer rows to read and group.

Its key is led by the site and its index holds both values, so a site's months are read from the index
alone. The projector keeps it in the same transaction as the daily rows from now on; here it is filled
once from ``metric_facts_monthly`` (equal to the sums of its days). Downgrading drops it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _code(length: int) -> sa.types.TypeEngine[str]:
    """A code column comparing bytewise on PostgreSQL, like the other read models' since 0008."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "metric_facts_site_monthly",
        sa.Column("site", _code(64), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("measure", _code(64), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("paired", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("site", "month", "measure", postgresql_include=["value", "paired"]),
    )
    op.execute(
        "INSERT INTO metric_facts_site_monthly (site, month, measure, value, paired) "
        "SELECT site, month, measure, sum(value), sum(paired) FROM metric_facts_monthly "
        "GROUP BY site, month, measure"
    )


def downgrade() -> None:
    op.drop_table("metric_facts_site_monthly")
