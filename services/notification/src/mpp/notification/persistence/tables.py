"""Notification tables: contacts (encrypted), recipient links, deliveries, the loopback provider's
messages, and the runtime tables (outbox, inbox, consumer offsets)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from mpp.kit.db import add_runtime_tables

metadata = MetaData()

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)

contacts = Table(
    "contacts",
    metadata,
    Column("citizen_ref", String(64), primary_key=True),
    Column("phone", LargeBinary, nullable=True, comment="AES-256-GCM ciphertext of the E.164 number"),
    Column("email", LargeBinary, nullable=True, comment="AES-256-GCM ciphertext of the address"),
    Column("whatsapp", Boolean, nullable=False),
    Column("preferred_channel", String(16), nullable=False),
    Column("optional_consent", Boolean, nullable=False),
    Column("consent_recorded_at", DateTime(timezone=True), nullable=False),
    Column("source", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

recipient_links = Table(
    "recipient_links",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("citizen_ref", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("trigger_event_id", String(36), nullable=False),
    Column("trigger_event_type", String(64), nullable=False),
    Column("recipient_ref", String(64), nullable=False),
    Column("message_kind", String(32), nullable=False),
    Column("channel", String(16), nullable=False, comment="'none' when no channel could be chosen"),
    Column("round", Integer, nullable=False, server_default="0", comment="0, then 1, 2... for resends"),
    Column("site", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("template", String(64), nullable=False),
    Column("locale", String(8), nullable=False),
    Column("critical", Boolean, nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column(
        "queued_at", DateTime(timezone=True), nullable=False, comment="order of the trigger per recipient"
    ),
    Column("remaining_channels", String(64), nullable=False, server_default=""),
    Column("context", JSON, nullable=False),
    Column("provider", String(64), nullable=True),
    Column("provider_message_id", String(128), nullable=True),
    Column("failure_reason", String(32), nullable=True),
    Column("provider_error_code", String(64), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("read_at", DateTime(timezone=True), nullable=True),
    Column("resend_of", String(36), nullable=True),
    Column("requested_by", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "trigger_event_id", "recipient_ref", "message_kind", "channel", "round", name="uq_deliveries_trigger"
    ),
    Index("ix_deliveries_due", "state", "not_before"),
    Index("ix_deliveries_recipient", "recipient_ref", "queued_at"),
    Index("ix_deliveries_provider_message", "provider", "provider_message_id"),
    Index("ix_deliveries_site_state", "site", "state", "updated_at"),
)

queue_tickets = Table(
    "queue_tickets",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("day", Date, nullable=False, comment="local day of the site"),
    Column("visit_id", String(64), nullable=True),
    Column("ticket_number", String(16), nullable=True),
    Column("rank_ms", BigInteger, nullable=False, comment="call order key (smaller first)"),
    Column("issued_at", DateTime(timezone=True), nullable=True),
    Column(
        "left_at", DateTime(timezone=True), nullable=True, comment="called, cancelled, no-show or transferred"
    ),
    Column("waiting", Boolean, nullable=False),
    Column("alerted", Boolean, nullable=False, server_default=false()),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_queue_tickets_waiting", "site", "service_type", "day", "waiting", "rank_ms"),
    Index("ix_queue_tickets_day", "day"),
)

loopback_messages = Table(
    "loopback_messages",
    metadata,
    Column("delivery_id", String(36), primary_key=True, comment="the idempotency key"),
    Column("channel", String(16), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("template", String(64), nullable=False),
    Column("recipient", String(32), nullable=False, comment="masked"),
    Column("subject", Text, nullable=True),
    Column("body", Text, nullable=False),
    Column("duplicates", Integer, nullable=False, server_default="0"),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
