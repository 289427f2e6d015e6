"""Waiting tickets of a site in call order (call-next walks it without sorting); unfinished tickets and
open visits of a site (the day close).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Call-next asks for the first waiting ticket of a counter's service types in rank order. With the
    # (site, service_type, state, rank) index and several service types, PostgreSQL reads every waiting
    # ticket of those types and sorts them on each call; this index is already in call order, so the
    # first rows it reads that match the counter's service types are the answer.
    op.create_index(
        "ix_tickets_waiting_rank",
        "tickets",
        ["site", "rank", "queued_at", "seq", "id"],
        postgresql_where=sa.text("state = 'waiting'"),
        sqlite_where=sa.text("state = 'waiting'"),
    )
    open_ticket = sa.text("state IN ('waiting', 'called', 'serving')")
    op.create_index(
        "ix_tickets_open", "tickets", ["site", "day"], postgresql_where=open_ticket, sqlite_where=open_ticket
    )
    open_visit = sa.text("ended_at IS NULL")
    op.create_index(
        "ix_visits_open",
        "visits",
        ["site", "started_at"],
        postgresql_where=open_visit,
        sqlite_where=open_visit,
    )


def downgrade() -> None:
    op.drop_index("ix_visits_open", table_name="visits")
    op.drop_index("ix_tickets_open", table_name="tickets")
    op.drop_index("ix_tickets_waiting_rank", table_name="tickets")
