"""Roll-ups of the metric read models: per month x site, and every site summed per day and per month.

The projector keeps them in the same transaction as the daily rows from now on; here they are filled
once from the daily rows already projected, so no replay is needed.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (name, time column, keeps the site, source table, value column, the columns after the key's dimensions)
_ROLLUPS = (
    ("metric_facts_monthly", "month", True, "metric_facts", "value", ("measure",)),
    ("metric_facts_national_daily", "day", False, "metric_facts", "value", ("measure",)),
    ("metric_facts_national_monthly", "month", False, "metric_facts", "value", ("measure",)),
    ("duration_histogram_monthly", "month", True, "duration_histogram", "count", ("kind", "bucket")),
    ("duration_histogram_national_daily", "day", False, "duration_histogram", "count", ("kind", "bucket")),
    (
        "duration_histogram_national_monthly",
        "month",
        False,
        "duration_histogram",
        "count",
        ("kind", "bucket"),
    ),
)
_SITE_INDEXED = ("metric_facts_monthly", "duration_histogram_monthly")


def _columns(time: str, site: bool, rest: tuple[str, ...], value: str) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [sa.Column(time, sa.Date, primary_key=True)]
    if site:
        columns.append(sa.Column("site", sa.String(64), primary_key=True))
    columns += [
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
    ]
    for name in rest:
        kind: sa.types.TypeEngine[object] = (
            sa.Integer() if name == "bucket" else sa.String(16 if name == "kind" else 64)
        )
        columns.append(sa.Column(name, kind, primary_key=True))
    columns.append(sa.Column(value, sa.BigInteger, nullable=False))
    return columns


def upgrade() -> None:
    month_of = "CAST(date_trunc('month', day) AS date)"
    if op.get_bind().dialect.name == "sqlite":
        month_of = "date(day, 'start of month')"
    for name, time, site, source, value, rest in _ROLLUPS:
        op.create_table(name, *_columns(time, site, rest, value))
        if name in _SITE_INDEXED:
            op.create_index(f"ix_{name}_site_month", name, ["site", "month"])
        keys = [
            month_of if time == "month" else "day",
            *(["site"] if site else []),
            "agency",
            "service_type",
            *rest,
        ]
        names = [time, *(["site"] if site else []), "agency", "service_type", *rest]
        op.execute(
            f"INSERT INTO {name} ({', '.join(names)}, {value}) "  # noqa: S608 - names are this file's own
            f"SELECT {', '.join(keys)}, sum({value}) FROM {source} GROUP BY {', '.join(keys)}"
        )


def downgrade() -> None:
    for name, *_ in reversed(_ROLLUPS):
        if name in _SITE_INDEXED:
            op.drop_index(f"ix_{name}_site_month", table_name=name)
        op.drop_table(name)
