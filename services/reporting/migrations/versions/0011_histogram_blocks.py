"""Waiting and service times (D1, D2) by region over long periods: the per-site monthly histogram holds 16
buckets to a row.

``duration_histogram_site_blocks`` replaces ``duration_histogram_site_monthly`` (0007): per calendar month
x site x kind x block of 16 consecutive 10-second buckets, the counts in ``c0`` .. ``c15`` (bucket ``b``
in block ``b / 16``, column ``c{b % 16}``; 0 where no duration fell). A year's percentiles by province
read and group a sixteenth of the rows (300 MPPs: about 43,000 rows of one kind instead of 650,000), and
the projector upserts a sixteenth of the keys. The figures are the same: the buckets are unchanged. The
counts are 32-bit ``integer`` (summed by PostgreSQL twice as fast as ``bigint``; one bucket of one site's
month never nears 2^31 durations).

Filled from the table it replaces, which is then dropped; going back unpacks the blocks into one row per
bucket that holds a count.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BLOCK = 16
_COUNTS = [f"c{i}" for i in range(BLOCK)]


def _code(length: int) -> sa.types.TypeEngine[str]:
    """A code column comparing bytewise on PostgreSQL, like the other read models' since 0008."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "duration_histogram_site_blocks",
        sa.Column("site", _code(64), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("kind", _code(16), nullable=False),
        sa.Column("block", sa.Integer, nullable=False),
        *(sa.Column(c, sa.Integer, nullable=False, server_default="0") for c in _COUNTS),
        sa.PrimaryKeyConstraint("site", "month", "kind", "block"),
    )
    sums = ", ".join(f"sum(CASE WHEN bucket % {BLOCK} = {i} THEN count ELSE 0 END)" for i in range(BLOCK))
    op.execute(
        f"INSERT INTO duration_histogram_site_blocks (site, month, kind, block, {', '.join(_COUNTS)}) "  # noqa: S608
        f"SELECT site, month, kind, bucket / {BLOCK}, {sums} FROM duration_histogram_site_monthly "
        f"GROUP BY site, month, kind, bucket / {BLOCK}"
    )
    op.drop_table("duration_histogram_site_monthly")


def downgrade() -> None:
    op.create_table(
        "duration_histogram_site_monthly",
        sa.Column("site", _code(64), nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("kind", _code(16), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("site", "month", "kind", "bucket", postgresql_include=["count"]),
    )
    unpacked = " UNION ALL ".join(
        f"SELECT site, month, kind, block * {BLOCK} + {i}, {c} "  # noqa: S608 - this file's own names
        f"FROM duration_histogram_site_blocks WHERE {c} <> 0"
        for i, c in enumerate(_COUNTS)
    )
    op.execute(f"INSERT INTO duration_histogram_site_monthly (site, month, kind, bucket, count) {unpacked}")
    op.drop_table("duration_histogram_site_blocks")
