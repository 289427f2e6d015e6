"""Two small partial indexes for call-next, which otherwise walks every open ticket of the site twice
per call: the ticket a counter is dealing with (called or serving) and the first waiting priority ticket
(the every-Nth rule's candidate, when few tickets are priority ones).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WAITING_PRIORITY = "state = 'waiting' AND priority_group <> 'none'"
BUSY = "state IN ('called', 'serving')"


def upgrade() -> None:
    op.create_index(
        "ix_tickets_waiting_priority",
        "tickets",
        ["site", "rank", "queued_at", "seq", "id"],
        postgresql_where=sa.text(WAITING_PRIORITY),
        sqlite_where=sa.text(WAITING_PRIORITY),
    )
    op.create_index(
        "ix_tickets_busy",
        "tickets",
        ["site", "counter"],
        postgresql_where=sa.text(BUSY),
        sqlite_where=sa.text(BUSY),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_busy", table_name="tickets")
    op.drop_index("ix_tickets_waiting_priority", table_name="tickets")
