"""Complaint descriptions and contacts encrypted at rest (AES-256-GCM, see persistence.protection).

Existing rows are sealed with the key of ``MPP_QUEUE_DATA_KEY`` (the development key when unset), the
key the service reads them with; then the plain-text columns are dropped.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from mpp.queue.config import QueueSettings
from mpp.queue.persistence.protection import TextSealer, decode_key

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 500

COMPLAINTS = sa.table(
    "complaints",
    sa.column("id", sa.String),
    sa.column("description", sa.Text),
    sa.column("contact", sa.String),
    sa.column("description_sealed", sa.LargeBinary),
    sa.column("contact_sealed", sa.LargeBinary),
)
"""Both shapes of the complaint text columns, as these steps read and write them."""


def _sealer() -> TextSealer:
    return TextSealer(decode_key(QueueSettings().data_key.get_secret_value()))


def upgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(sa.Column("description_sealed", sa.LargeBinary))
        batch.add_column(sa.Column("contact_sealed", sa.LargeBinary))
    sealer = _sealer()
    conn = op.get_bind()
    table = COMPLAINTS
    while True:
        rows = conn.execute(
            sa.select(table.c.id, table.c.description, table.c.contact)
            .where(table.c.description_sealed.is_(None))
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            conn.execute(
                table.update()
                .where(table.c.id == row.id)
                .values(
                    description_sealed=sealer.seal(row.id, "description", row.description),
                    contact_sealed=None
                    if row.contact is None
                    else sealer.seal(row.id, "contact", row.contact),
                )
            )
    with op.batch_alter_table("complaints") as batch:
        batch.alter_column("description_sealed", existing_type=sa.LargeBinary, nullable=False)
        batch.drop_column("description")
        batch.drop_column("contact")


def downgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(sa.Column("description", sa.Text))
        batch.add_column(sa.Column("contact", sa.String(200)))
    sealer = _sealer()
    conn = op.get_bind()
    table = COMPLAINTS
    for row in conn.execute(sa.select(table.c.id, table.c.description_sealed, table.c.contact_sealed)).all():
        conn.execute(
            table.update()
            .where(table.c.id == row.id)
            .values(
                description=sealer.open(row.id, "description", row.description_sealed),
                contact=None
                if row.contact_sealed is None
                else sealer.open(row.id, "contact", row.contact_sealed),
            )
        )
    with op.batch_alter_table("complaints") as batch:
        batch.alter_column("description", existing_type=sa.Text, nullable=False)
        batch.drop_column("description_sealed")
        batch.drop_column("contact_sealed")
