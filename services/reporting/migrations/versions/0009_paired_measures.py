"""Measures always added together share a row: fewer rows and index entries for the projector to write.

The projector adds some measures only ever together with another of the same key: a count of events and
their sum (``waiting_count`` and ``waiting_seconds_sum``, an SKM element's answers and the sum of their
scores, ...), or how many of them were anonymous or within the standard. The metric facts and their
roll-ups get a ``paired`` column: the row of the first measure of such a pair holds the second's value
there, and the second's own row goes. Pairs are about a third of the rows of a day's facts, and every
row the projector writes costs an insert or update and an entry in each index of its table.

The pairs are listed here as they were when this migration was written (the projector's
``facts.PAIRED``). A second measure without a row of its first (which the projector never writes) gets
one, holding 0 as the first's value. The two roll-ups whose key's index holds the value (0008) hold
both values there.

Downgrading gives every non-zero second value its own row again, drops those rows of first measures
holding 0 and the ``paired`` column.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
from sqlalchemy import BigInteger, Column, text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PAIRS = (
    ("waiting_count", "waiting_seconds_sum"),
    ("service_count", "service_seconds_sum"),
    *((f"skm_u{i}_answers", f"skm_u{i}_sum") for i in range(1, 10)),
    ("applications_sla_known", "applications_within_sla"),
    ("applications_working_days_count", "applications_working_days_sum"),
    ("complaints_received", "complaints_anonymous"),
    ("complaints_responded", "complaints_response_days_sum"),
    ("complaints_resolved", "complaints_resolution_days_sum"),
)
# table -> its key columns other than the measure
TABLES = {
    "metric_facts": ("day", "site", "agency", "service_type"),
    "metric_facts_monthly": ("site", "month", "agency", "service_type"),
    "metric_facts_national_daily": ("day", "agency", "service_type"),
    "metric_facts_national_monthly": ("month", "agency", "service_type"),
}
# The roll-ups whose key's index holds the value (0008): its key, in order.
COVERED = {
    "metric_facts_monthly": "site, month, agency, service_type, measure",
    "metric_facts_national_daily": "day, measure, agency, service_type",
}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _same_key(keys: tuple[str, ...], a: str, b: str) -> str:
    return " AND ".join(f"{a}.{k} = {b}.{k}" for k in keys)


def _rekey(include: str) -> None:
    for table, key in COVERED.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key}) INCLUDE ({include})")


def upgrade() -> None:
    bind = op.get_bind()
    for table, keys in TABLES.items():
        op.add_column(table, Column("paired", BigInteger, nullable=False, server_default="0"))
        names = ", ".join(keys)
        for first, second in PAIRS:
            pair = {"first": first, "second": second}
            # Table and column names are this module's own.
            bind.execute(
                text(
                    f"INSERT INTO {table} ({names}, measure, value, paired) "  # noqa: S608
                    f"SELECT {names}, CAST(:first AS varchar(64)), 0, 0 FROM {table} AS s WHERE s.measure = :second "
                    f"AND NOT EXISTS (SELECT 1 FROM {table} AS f WHERE f.measure = :first "
                    f"AND {_same_key(keys, 'f', 's')})"
                ),
                pair,
            )
            bind.execute(
                text(
                    f"UPDATE {table} SET paired = s.value FROM {table} AS s "  # noqa: S608
                    f"WHERE {table}.measure = :first AND s.measure = :second "
                    f"AND {_same_key(keys, table, 's')}"
                ),
                pair,
            )
            bind.execute(text(f"DELETE FROM {table} WHERE measure = :second"), pair)  # noqa: S608
    if _postgres():
        _rekey("value, paired")


def downgrade() -> None:
    bind = op.get_bind()
    if _postgres():
        _rekey("value")
    for table, keys in TABLES.items():
        names = ", ".join(keys)
        for first, second in PAIRS:
            pair = {"first": first, "second": second}
            bind.execute(
                text(
                    f"INSERT INTO {table} ({names}, measure, value, paired) "  # noqa: S608
                    f"SELECT {names}, CAST(:second AS varchar(64)), paired, 0 FROM {table} "
                    "WHERE measure = :first AND paired <> 0"
                ),
                pair,
            )
            bind.execute(
                text(f"DELETE FROM {table} WHERE measure = :first AND value = 0"),  # noqa: S608
                pair,
            )
        # SQLite drops a column itself since 3.35 (Alembic would copy the table otherwise).
        op.execute(f"ALTER TABLE {table} DROP COLUMN paired")
