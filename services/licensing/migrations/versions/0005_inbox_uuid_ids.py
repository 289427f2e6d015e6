"""The inbox keeps event ids as PostgreSQL ``uuid`` (16 bytes) rather than their text (37): a smaller key
to compare, index and write for every event the service's consumers claim
(:func:`mpp.kit.migrations.inbox_ids_as_uuid`). SQLite keeps text.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from mpp.kit.migrations import inbox_ids_as_text, inbox_ids_as_uuid

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inbox_ids_as_uuid(op)


def downgrade() -> None:
    inbox_ids_as_text(op)
