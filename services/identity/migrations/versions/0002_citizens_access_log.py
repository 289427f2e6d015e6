"""The citizen registry (encrypted personal fields, keyed-hash lookup), the access log and idempotency keys.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "citizens",
        sa.Column("citizen_ref", sa.String(34), primary_key=True),
        sa.Column("nik_lookup", sa.String(64), nullable=False),
        sa.Column("nik_enc", sa.LargeBinary, nullable=False),
        sa.Column("kk_enc", sa.LargeBinary, nullable=False),
        sa.Column("full_name_enc", sa.LargeBinary, nullable=False),
        sa.Column("birth_date_enc", sa.LargeBinary, nullable=False),
        sa.Column("birth_place_enc", sa.LargeBinary, nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("domicile_kabkota", sa.String(4), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(128), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ux_citizens_nik_lookup", "citizens", ["nik_lookup"], unique=True)
    op.create_index("ix_citizens_site_registered", "citizens", ["site", "registered_at"])
    op.create_table(
        "access_log",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("request_event_id", sa.String(36)),
        sa.Column("correlation_id", sa.Text),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("requesting_agency", sa.String(64), nullable=False),
        sa.Column("requesting_service", sa.String(200), nullable=False),
        sa.Column("officer_ref", sa.String(64)),
        sa.Column("case_id", sa.String(64)),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("citizen_ref", sa.String(34)),
        sa.Column("subject_hash", sa.String(64)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(32)),
        sa.Column("answer_event_id", sa.String(36)),
        sa.Column("requested_at", sa.DateTime(timezone=True)),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("requesting_agency", "request_id", name="uq_access_log_request"),
    )
    op.create_index("ix_access_log_citizen", "access_log", ["citizen_ref", "answered_at"])
    op.create_index("ix_access_log_subject", "access_log", ["subject_hash", "answered_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response_enc", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_access_log_subject", table_name="access_log")
    op.drop_index("ix_access_log_citizen", table_name="access_log")
    op.drop_table("access_log")
    op.drop_index("ix_citizens_site_registered", table_name="citizens")
    op.drop_index("ux_citizens_nik_lookup", table_name="citizens")
    op.drop_table("citizens")
