"""Queue tables. Nothing here identifies a citizen: tickets carry a priority group, never a NIK or name."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
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

from mpp.kit.db import add_runtime_tables

metadata = MetaData()

visits = Table(
    "visits",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("tickets_total", Integer, nullable=False),
    Column("tickets_served", Integer, nullable=False),
)
# The day close ends a site's visits still open.
Index(
    "ix_visits_open",
    visits.c.site,
    visits.c.started_at,
    postgresql_where=visits.c.ended_at.is_(None),
    sqlite_where=visits.c.ended_at.is_(None),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("visit_id", String(36), nullable=False),
    Column("site", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("prefix", String(3), nullable=False),
    Column("day", String(10), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("number", String(8), nullable=False),
    Column("priority_group", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("rank", BigInteger, nullable=False),
    Column("call_count", Integer, nullable=False),
    Column("first_called_at", DateTime(timezone=True)),
    Column("called_at", DateTime(timezone=True)),
    Column("counter", String(64)),
    Column("officer", String(128)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("transferred_from", String(36)),
    Column("transferred_to", String(36)),
    Column("decision", JSON),
    UniqueConstraint("site", "day", "number", name="uq_tickets_site_day_number"),
)
# Waiting tickets of one service type at a site, in call order (waiting tickets only, so the index
# shrinks as tickets are called): call-next reads the first tickets of each of its counter's service
# types; the place of a ticket in its queue and the waiting lists of a service type read it too.
Index(
    "ix_tickets_waiting_type",
    tickets.c.site,
    tickets.c.service_type,
    tickets.c.rank,
    tickets.c.queued_at,
    tickets.c.seq,
    tickets.c.id,
    postgresql_where=tickets.c.state == "waiting",
    sqlite_where=tickets.c.state == "waiting",
)
# The same for the whole site: waiting lists across service types, and call-next's fallback.
Index(
    "ix_tickets_waiting_rank",
    tickets.c.site,
    tickets.c.rank,
    tickets.c.queued_at,
    tickets.c.seq,
    tickets.c.id,
    postgresql_where=tickets.c.state == "waiting",
    sqlite_where=tickets.c.state == "waiting",
)
# The every-Nth rule's candidate: the first waiting priority ticket, found without walking the others.
_waiting_priority = (tickets.c.state == "waiting") & (tickets.c.priority_group != "none")
Index(
    "ix_tickets_waiting_priority",
    tickets.c.site,
    tickets.c.rank,
    tickets.c.queued_at,
    tickets.c.seq,
    tickets.c.id,
    postgresql_where=_waiting_priority,
    sqlite_where=_waiting_priority,
)
# The ticket a counter is dealing with (at most one per counter): call-next checks it on every call.
_busy = tickets.c.state.in_(["called", "serving"])
Index("ix_tickets_busy", tickets.c.site, tickets.c.counter, postgresql_where=_busy, sqlite_where=_busy)
# The day close finds the days of a site's unfinished tickets; few rows are unfinished.
Index(
    "ix_tickets_open",
    tickets.c.site,
    tickets.c.day,
    postgresql_where=tickets.c.state.in_(["waiting", "called", "serving"]),
    sqlite_where=tickets.c.state.in_(["waiting", "called", "serving"]),
)
Index("ix_tickets_visit", tickets.c.visit_id)

ticket_sequences = Table(
    "ticket_sequences",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("prefix", String(3), primary_key=True),
    Column("last", Integer, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("agency", String(64), nullable=False),
    Column("service_types", JSON, nullable=False),
    Column("open", Boolean, nullable=False),
    Column("opened_at", DateTime(timezone=True)),
    Column("opened_by", String(128)),
    Column("planned", Boolean, nullable=False),
    Column("calls_since_priority", Integer, nullable=False),
    Column("tickets_served", Integer, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("agency", String(64), primary_key=True, doc="Empty for the site's default."),
    Column("document", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
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

appointments = Table(
    "appointments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("booking_code", String(16), nullable=False),
    Column("site", String(64), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("slot_start", DateTime(timezone=True), nullable=False),
    Column("slot_end", DateTime(timezone=True), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("citizen_ref", String(64), nullable=False, doc="Pseudonymous; never a NIK or a name."),
    Column("booker", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("cancelled_by", String(16)),
    Column("checked_in_at", DateTime(timezone=True)),
    Column("missed_at", DateTime(timezone=True)),
    Column("visit_id", String(36)),
    Column("ticket_id", String(36)),
    UniqueConstraint("booking_code", name="uq_appointments_booking_code"),
)
# The missed sweep reads booked appointments by slot start; staff lists read a site's day.
Index("ix_appointments_state_slot", appointments.c.state, appointments.c.slot_start)
Index("ix_appointments_site_day", appointments.c.site, appointments.c.day, appointments.c.service_type)
Index("ix_appointments_citizen", appointments.c.citizen_ref, appointments.c.service_type, appointments.c.day)

# Seats taken per slot and per day: a conditional increment of these rows enforces the quotas.
appointment_slots = Table(
    "appointment_slots",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("slot_start", DateTime(timezone=True), primary_key=True),
    Column("booked", Integer, nullable=False),
)

appointment_days = Table(
    "appointment_days",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("booked", Integer, nullable=False),
)

# SKM: one invitation per completed ticket (answered at most once), and the answers apart from it, with
# nothing that leads back to the ticket, the visit or the citizen.
survey_invitations = Table(
    "survey_invitations",
    metadata,
    Column("token", String(32), primary_key=True),
    Column("ticket_id", String(36), nullable=False),
    Column("site", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    Column("closes_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    UniqueConstraint("ticket_id", name="uq_survey_invitations_ticket"),
)

survey_responses = Table(
    "survey_responses",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("site", String(64), nullable=False),
    Column("agency", String(64), nullable=False),
    Column("service_type", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    *(Column(f"u{i}", Integer) for i in range(1, 10)),
    Column("sex", String(16)),
    Column("age_band", String(16)),
    Column("education", String(32)),
    Column("occupation", String(32)),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
)
Index("ix_survey_responses_service", survey_responses.c.site, survey_responses.c.service_type)

complaints = Table(
    "complaints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tracking_code", String(16), nullable=False),
    Column("site", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("complaint_class", String(32), nullable=False),
    Column("anonymous", Boolean, nullable=False),
    Column("complainant_ref", String(64), doc="Pseudonymous; none for anonymous complaints."),
    Column(
        "contact_sealed",
        LargeBinary,
        doc="Only if the complainant gave it; never in an event. AES-GCM sealed (persistence.protection).",
    ),
    Column("agency", String(64)),
    Column("service_type", String(64)),
    Column("lapor_tracking_id", String(64)),
    Column("description_sealed", LargeBinary, nullable=False, doc="AES-GCM sealed (persistence.protection)."),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("received_by", String(128), nullable=False),
    Column("first_response_limit_days", Integer, nullable=False),
    Column("resolution_limit_days", Integer, nullable=False),
    Column("first_response_due", DateTime(timezone=True), nullable=False),
    Column("resolution_due", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("responded_at", DateTime(timezone=True)),
    Column("responded_by", String(128)),
    Column("response", Text),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", String(128)),
    Column("outcome", String(32)),
    Column("resolution", Text),
    UniqueConstraint("tracking_code", name="uq_complaints_tracking_code"),
)
# Supervisors list the open complaints of a site (and agency) by due date.
Index("ix_complaints_open", complaints.c.site, complaints.c.state, complaints.c.resolution_due)

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)
