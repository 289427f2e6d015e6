"""Licensing tables. Applicant identity is kept as a pseudonymous reference, never the raw NIK."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from mpp.kit.db import add_runtime_tables

metadata = MetaData()

applications = Table(
    "applications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tracking_code", String(16), nullable=False, unique=True),
    Column("service_type", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("site", String(64), nullable=False),
    Column("applicant_ref", String(64), nullable=False),
    Column("applicant_name", String(200), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("documents", JSON, nullable=False),
    Column("status", String(32), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("approved_at", DateTime(timezone=True)),
    Column("approved_by", String(128)),
    Column("permit_number", String(64), unique=True),
    Column("version", Integer, nullable=False),
    Column("workflow", String(64), nullable=False),
    Column("pauses", JSON, nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("at_risk_from", DateTime(timezone=True)),
    Column("finished", Boolean, nullable=False),
    Column("issued_at", DateTime(timezone=True)),
    Column("within_sla", Boolean),
    Column("sla_breached_at", DateTime(timezone=True)),
    Column("verification_request_id", String(64)),
    Column("nik_failure_reason", String(500)),
    Column("verification_attempts", Integer, nullable=False, server_default="0"),
    Column("verification_next_at", DateTime(timezone=True)),
    Column("verification_request", LargeBinary),
)
Index("ix_applications_scope", applications.c.agency, applications.c.site, applications.c.status)
Index("ux_applications_verification_request_id", applications.c.verification_request_id, unique=True)
Index(
    "ix_applications_verification_next_at",
    applications.c.verification_next_at,
    postgresql_where=applications.c.verification_next_at.is_not(None),
)
Index("ix_applications_open_due", applications.c.due_at, postgresql_where=applications.c.finished.is_(False))

permit_sequences = Table(
    "permit_sequences",
    metadata,
    Column("agency", String(64), primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last", Integer, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(128), nullable=False),
    Column("key", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
)

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)
