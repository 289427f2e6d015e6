"""Faster rebuilds: the roll-ups are filled once, at the end of a rebuild, rather than batch by batch.

``rollups_pending`` holds a row (when it was set) while the roll-ups are not kept. A rebuild on PostgreSQL
sets it in the transaction that empties the read models, writes only the daily read models while it
replays the topics, then fills every roll-up from them and deletes the row in one transaction. A rebuild
interrupted before that leaves the row: the service fills the roll-ups when it starts, before it projects
anything. While the row is there, figures are read from the daily read models alone.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("rollups_pending", sa.Column("since", sa.DateTime(timezone=True), primary_key=True))


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT count(*) FROM rollups_pending")).scalar():
        # The versions before this one keep their roll-ups batch by batch and would never fill them.
        raise RuntimeError(
            "a rebuild has not filled the roll-ups yet: start the service once (it fills them) and downgrade then"
        )
    op.drop_table("rollups_pending")
