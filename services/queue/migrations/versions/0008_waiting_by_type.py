"""Call-next reads the queue by service type; indexes that every ticket update has to maintain for no
reader are dropped; the tickets table is vacuumed and analysed after a fixed number of changes.

- ``ix_tickets_waiting_type``: waiting tickets of a site by service type, in call order (partial, so it
  holds only waiting tickets and shrinks as they are called). Call-next reads the first tickets of each
  of its counter's service types instead of walking the site's queue past other services' tickets.
- ``ix_tickets_waiting`` (every ticket, with its state) goes: the new index serves its readers (the
  place of a ticket in its queue, waiting lists of a service type). ``ix_tickets_counter`` goes too:
  ``ix_tickets_busy`` serves the ticket a counter is dealing with. Ticket updates change ``state``, so
  none of them is a HOT update and each one writes an entry in every index whose predicate the new row
  meets: two fewer indexes is two fewer entries per update, three updates per served ticket.
- Autovacuum by count rather than by share of the table (which holds every day's tickets, so a share
  grows with the history): the called tickets' dead entries at the head of the waiting indexes, which
  every call steps over, are removed within a minute or so at any table size, and the planner's
  statistics follow the day's queue. Without statistics (a table filled since its last analyse) the
  planner walks the site's whole queue in call order, as call-next did before; with them it reads the
  counter's service types only.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WAITING = "state = 'waiting'"
AUTOVACUUM = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0",
    "autovacuum_vacuum_insert_threshold": "1000",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "500",
}


def upgrade() -> None:
    op.create_index(
        "ix_tickets_waiting_type",
        "tickets",
        ["site", "service_type", "rank", "queued_at", "seq", "id"],
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )
    op.drop_index("ix_tickets_waiting", table_name="tickets")
    op.drop_index("ix_tickets_counter", table_name="tickets")
    if op.get_bind().dialect.name == "postgresql":
        settings = ", ".join(f"{name} = {value}" for name, value in AUTOVACUUM.items())
        op.execute(f"ALTER TABLE tickets SET ({settings})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE tickets RESET ({', '.join(AUTOVACUUM)})")
    op.create_index("ix_tickets_counter", "tickets", ["site", "counter", "state"])
    op.create_index("ix_tickets_waiting", "tickets", ["site", "service_type", "state", "rank", "seq"])
    op.drop_index("ix_tickets_waiting_type", table_name="tickets")
