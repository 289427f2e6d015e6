"""Contacts, recipient links, deliveries and the loopback provider's messages.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("citizen_ref", sa.String(64), primary_key=True),
        sa.Column(
            "phone", sa.LargeBinary, nullable=True, comment="AES-256-GCM ciphertext of the E.164 number"
        ),
        sa.Column("email", sa.LargeBinary, nullable=True, comment="AES-256-GCM ciphertext of the address"),
        sa.Column("whatsapp", sa.Boolean, nullable=False),
        sa.Column("preferred_channel", sa.String(16), nullable=False),
        sa.Column("optional_consent", sa.Boolean, nullable=False),
        sa.Column("consent_recorded_at", TZ, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "recipient_links",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("citizen_ref", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trigger_event_id", sa.String(36), nullable=False),
        sa.Column("trigger_event_type", sa.String(64), nullable=False),
        sa.Column("recipient_ref", sa.String(64), nullable=False),
        sa.Column("message_kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False, comment="'none' when no channel could be chosen"),
        sa.Column(
            "round", sa.Integer, nullable=False, server_default="0", comment="0, then 1, 2... for resends"
        ),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("critical", sa.Boolean, nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", TZ, nullable=False),
        sa.Column("queued_at", TZ, nullable=False, comment="order of the trigger per recipient"),
        sa.Column("remaining_channels", sa.String(64), nullable=False, server_default=""),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("failure_reason", sa.String(32), nullable=True),
        sa.Column("provider_error_code", sa.String(64), nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.Column("read_at", TZ, nullable=True),
        sa.Column("resend_of", sa.String(36), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint(
            "trigger_event_id",
            "recipient_ref",
            "message_kind",
            "channel",
            "round",
            name="uq_deliveries_trigger",
        ),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["state", "not_before"])
    op.create_index("ix_deliveries_recipient", "deliveries", ["recipient_ref", "queued_at"])
    op.create_index("ix_deliveries_provider_message", "deliveries", ["provider", "provider_message_id"])
    op.create_index("ix_deliveries_site_state", "deliveries", ["site", "state", "updated_at"])
    op.create_table(
        "loopback_messages",
        sa.Column("delivery_id", sa.String(36), primary_key=True, comment="the idempotency key"),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(32), nullable=False, comment="masked"),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
        sa.Column("received_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("loopback_messages", "deliveries", "recipient_links", "contacts"):
        op.drop_table(table)
