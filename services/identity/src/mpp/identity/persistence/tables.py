"""Identity tables.

Personal fields of a citizen (NIK, KK number, name, birth date, birth place) are stored only as AES-GCM
ciphertext; the NIK is found by a keyed hash (``nik_lookup``). The access log names citizens by their
pseudonymous reference, or by a keyed hash of the number asked about when no record was found.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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
)

from mpp.kit.db import Id, add_runtime_tables

metadata = MetaData()

citizens = Table(
    "citizens",
    metadata,
    Column("citizen_ref", String(34), primary_key=True),
    Column("nik_lookup", String(64), nullable=False),
    Column("nik_enc", LargeBinary, nullable=False),
    Column("kk_enc", LargeBinary, nullable=False),
    Column("full_name_enc", LargeBinary, nullable=False),
    Column("birth_date_enc", LargeBinary, nullable=False),
    Column("birth_place_enc", LargeBinary, nullable=False),
    Column("sex", String(8), nullable=False),
    Column("domicile_kabkota", String(4), nullable=False),
    Column("status", String(16), nullable=False),
    Column("site", String(64), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("registered_by", String(128), nullable=False),
    Column("status_changed_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
)
Index("ux_citizens_nik_lookup", citizens.c.nik_lookup, unique=True)
Index("ix_citizens_site_registered", citizens.c.site, citizens.c.registered_at)

access_log = Table(
    "access_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("request_event_id", String(36)),
    Column("correlation_id", Text),
    Column("channel", String(16), nullable=False),
    Column("requesting_agency", String(64), nullable=False),
    Column("requesting_service", String(200), nullable=False),
    Column("officer_ref", String(64)),
    Column("case_id", String(64)),
    Column("purpose", String(64), nullable=False),
    Column("site", String(64), nullable=False),
    Column("citizen_ref", String(34)),
    Column("subject_hash", String(64)),
    Column("outcome", String(16), nullable=False),
    Column("reason_code", String(32)),
    Column("answer_event_id", String(36)),
    Column("requested_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("requesting_agency", "request_id", name="uq_access_log_request"),
)
Index("ix_access_log_citizen", access_log.c.citizen_ref, access_log.c.answered_at)
Index("ix_access_log_subject", access_log.c.subject_hash, access_log.c.answered_at)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(128), nullable=False),
    Column("key", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    # The stored answer holds a name and birth date: encrypted like the citizen record.
    Column("response_enc", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
)

document_applications = Table(
    "document_applications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tracking_code", String(16), nullable=False, unique=True),
    Column("service_type", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("workflow", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("site", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("applicant_ref", String(34), nullable=False),
    Column("subject_ref", String(34)),
    Column("reason", String(16), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("submitted_by", String(128), nullable=False),
    # Requirement codes, content types and sizes only; file names may name the citizen: in details_enc.
    Column("documents", JSON, nullable=False),
    # NIKs, names, birth data of the form (JSON), AES-GCM encrypted and bound to the application id.
    Column("details_enc", LargeBinary, nullable=False),
    Column("status", String(32), nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("pauses", JSON, nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("last_note", Text),
    Column("missing", JSON, nullable=False),
    Column("issued_at", DateTime(timezone=True)),
    Column("document_ref", String(64), unique=True),
    Column("document_number_enc", LargeBinary),
    Column("medium", String(16)),
    Column("working_days_elapsed", Integer),
    Column("within_sla", Boolean),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
)
Index(
    "ix_document_applications_queue",
    document_applications.c.agency,
    document_applications.c.site,
    document_applications.c.status,
    document_applications.c.submitted_at,
)
Index("ix_document_applications_applicant", document_applications.c.applicant_ref)

document_serials = Table(
    "document_serials",
    metadata,
    # e.g. "kk:329801" or "akta:3298": one counter per numbering region and issue day.
    Column("scope", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("last", Integer, nullable=False),
)

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)
