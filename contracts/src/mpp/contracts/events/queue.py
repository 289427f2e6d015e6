"""Queue events: visits and tickets, appointments, counters, SKM surveys and complaints.

A visit is one citizen's stay at the MPP; it holds one ticket per service asked for. Visit and
ticket events travel on ``mpp.queue.visits`` keyed by the visit id, so a visit's tickets stay in
order. Appointments, counters, surveys and complaints each have their own topic keyed by their id.
Durations are whole seconds. No event here carries a NIK, a name or contact details.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mpp.contracts.envelope import EventPayload, event
from mpp.contracts.events.common import (
    COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS,
    AgeBand,
    AgencyCode,
    Channel,
    CitizenRef,
    Code,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    CounterCode,
    OfficerRef,
    PriorityGroup,
    ServiceTypeCode,
    Sex,
    SkmElement,
)
from mpp.contracts.topics import (
    QUEUE_APPOINTMENTS,
    QUEUE_COMPLAINTS,
    QUEUE_COUNTERS,
    QUEUE_SURVEYS,
    QUEUE_VISITS,
)

DOMAIN = "queue"

VisitId = Annotated[
    str, Field(min_length=1, max_length=64, description="Visit id: the record key of mpp.queue.visits.")
]
TicketId = Annotated[str, Field(min_length=1, max_length=64, description="Ticket id, unique across sites.")]
AppointmentId = Annotated[
    str,
    Field(
        min_length=1, max_length=64, description="Appointment id: the record key of mpp.queue.appointments."
    ),
]
ComplaintId = Annotated[
    str,
    Field(min_length=1, max_length=64, description="Complaint id: the record key of mpp.queue.complaints."),
]

TicketNumber = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{1,3}-[0-9]{3,4}$",
        description="Ticket number shown and called out, service prefix and sequence, e.g. A-012.",
    ),
]

Seconds = Annotated[int, Field(ge=0, description="A duration in whole seconds.")]


class CancelledBy(StrEnum):
    """Who cancelled a ticket or appointment."""

    CITIZEN = "citizen"
    OFFICER = "officer"
    SYSTEM = "system"


# --- visits and tickets -------------------------------------------------------------------------


@event("VisitStarted", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class VisitStartedV1(EventPayload):
    """A citizen arrived at the MPP: at the reception kiosk or by checking in an appointment."""

    visit_id: VisitId
    channel: Channel = Field(description="Walk-in, or arrival for an appointment booked online.")
    citizen_ref: CitizenRef | None = Field(
        default=None, description="Set when the visitor identified themselves; anonymous walk-ins have none."
    )
    appointment_id: AppointmentId | None = Field(default=None, description="Appointment checked in, if any.")
    started_at: AwareDatetime


@event("VisitEnded", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class VisitEndedV1(EventPayload):
    """A visit ended: its last ticket was finished, cancelled or not answered, or the day closed."""

    visit_id: VisitId
    started_at: AwareDatetime
    ended_at: AwareDatetime
    duration_seconds: Seconds
    tickets: int = Field(ge=0, description="Tickets issued during the visit.")
    tickets_served: int = Field(ge=0, description="Tickets whose service was completed.")


@event("TicketIssued", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class TicketIssuedV1(EventPayload):
    """A queue ticket was issued for one service within a visit."""

    visit_id: VisitId
    ticket_id: TicketId
    ticket_number: TicketNumber
    service_type: ServiceTypeCode
    agency: AgencyCode = Field(description="Agency that provides the service.")
    priority_group: PriorityGroup = Field(
        default=PriorityGroup.NONE, description="Priority group served first; none for the regular queue."
    )
    channel: Channel = Field(description="Taken at the kiosk (walk_in) or booked online.")
    appointment_id: AppointmentId | None = None
    issued_at: AwareDatetime
    transferred_from: TicketId | None = Field(
        default=None, description="Ticket of the same visit this one continues after a transfer, if any."
    )


@event("TicketCalled", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class TicketCalledV1(EventPayload):
    """A ticket was called to a counter (again, if ``call_count`` is above one)."""

    visit_id: VisitId
    ticket_id: TicketId
    ticket_number: TicketNumber
    service_type: ServiceTypeCode
    agency: AgencyCode
    counter: CounterCode = Field(description="Counter code the citizen is called to.")
    officer_ref: OfficerRef
    call_count: int = Field(default=1, ge=1, description="1 for the first call, 2 or more for recalls.")
    called_at: AwareDatetime
    waiting_seconds: Seconds = Field(description="From issue to this call.")


@event("ServiceStarted", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class ServiceStartedV1(EventPayload):
    """The citizen arrived at the counter and the officer started serving the ticket."""

    visit_id: VisitId
    ticket_id: TicketId
    service_type: ServiceTypeCode
    agency: AgencyCode
    counter: CounterCode
    officer_ref: OfficerRef
    started_at: AwareDatetime
    walking_seconds: Seconds = Field(description="From the call to the start of service.")


@event("ServiceCompleted", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class ServiceCompletedV1(EventPayload):
    """The officer finished serving a ticket. ``total_seconds`` is waiting + walking + service."""

    visit_id: VisitId
    ticket_id: TicketId
    ticket_number: TicketNumber
    service_type: ServiceTypeCode
    agency: AgencyCode
    counter: CounterCode
    officer_ref: OfficerRef
    priority_group: PriorityGroup = PriorityGroup.NONE
    channel: Channel
    issued_at: AwareDatetime
    completed_at: AwareDatetime
    waiting_seconds: Seconds = Field(description="From issue to the first call.")
    walking_seconds: Seconds = Field(description="From the call to the start of service.")
    service_seconds: Seconds = Field(description="From the start to the end of service.")
    total_seconds: Seconds = Field(description="From issue to the end of service.")
    application_id: str | None = Field(
        default=None, description="Application opened at the counter (licensing or civil registry), if any."
    )


@event("TicketNoShow", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class TicketNoShowV1(EventPayload):
    """A called ticket was not answered after the last recall and left the queue."""

    visit_id: VisitId
    ticket_id: TicketId
    service_type: ServiceTypeCode
    agency: AgencyCode
    counter: CounterCode
    call_count: int = Field(ge=1)
    waiting_seconds: Seconds = Field(description="From issue to the first call.")
    marked_at: AwareDatetime


@event("TicketTransferred", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class TicketTransferredV1(EventPayload):
    """A ticket moved to another service or counter (e.g. a referral to another agency's desk)."""

    visit_id: VisitId
    ticket_id: TicketId
    from_service_type: ServiceTypeCode
    to_service_type: ServiceTypeCode
    from_agency: AgencyCode
    to_agency: AgencyCode
    from_counter: CounterCode | None = None
    to_counter: CounterCode | None = Field(default=None, description="Set when sent to a specific counter.")
    officer_ref: OfficerRef
    reason: str = Field(default="", max_length=500, description="Short reason (no personal data).")
    transferred_at: AwareDatetime
    to_ticket_id: TicketId | None = Field(
        default=None, description="The new ticket that continues the visit in the target queue."
    )
    to_ticket_number: TicketNumber | None = Field(default=None, description="Number of the new ticket.")


@event("TicketCancelled", 1, topic=QUEUE_VISITS, domain=DOMAIN)
class TicketCancelledV1(EventPayload):
    """A ticket was cancelled before it was served."""

    visit_id: VisitId
    ticket_id: TicketId
    service_type: ServiceTypeCode
    agency: AgencyCode
    cancelled_by: CancelledBy
    reason_code: Code = Field(description="e.g. citizen_left, wrong_service, day_closed.")
    cancelled_at: AwareDatetime
    waiting_seconds: Seconds = Field(description="From issue to cancellation.")


# --- appointments -------------------------------------------------------------------------------


@event("AppointmentBooked", 1, topic=QUEUE_APPOINTMENTS, domain=DOMAIN)
class AppointmentBookedV1(EventPayload):
    """A citizen booked a time slot online (the MPP's site or MPP Digital)."""

    appointment_id: AppointmentId
    service_type: ServiceTypeCode
    agency: AgencyCode
    citizen_ref: CitizenRef
    channel: Channel = Field(description="online or mpp_digital.")
    booking_code: str = Field(description="Code shown at the kiosk to check in.")
    slot_start: AwareDatetime
    slot_end: AwareDatetime
    booked_at: AwareDatetime

    @model_validator(mode="after")
    def _slot_in_order(self) -> Self:
        if self.slot_end <= self.slot_start:
            raise ValueError("slot_end must be after slot_start")
        return self


@event("AppointmentCancelled", 1, topic=QUEUE_APPOINTMENTS, domain=DOMAIN)
class AppointmentCancelledV1(EventPayload):
    """An appointment was cancelled by the citizen, an officer or the system (e.g. an unplanned closure)."""

    appointment_id: AppointmentId
    service_type: ServiceTypeCode
    agency: AgencyCode
    cancelled_by: CancelledBy
    reason_code: Code
    slot_start: AwareDatetime
    cancelled_at: AwareDatetime


@event("AppointmentCheckedIn", 1, topic=QUEUE_APPOINTMENTS, domain=DOMAIN)
class AppointmentCheckedInV1(EventPayload):
    """The citizen arrived for an appointment and received a ticket."""

    appointment_id: AppointmentId
    service_type: ServiceTypeCode
    agency: AgencyCode
    visit_id: VisitId
    ticket_id: TicketId
    slot_start: AwareDatetime
    checked_in_at: AwareDatetime
    offset_seconds: int = Field(
        description="Check-in minus slot start: negative when early, positive when late."
    )


@event("AppointmentMissed", 1, topic=QUEUE_APPOINTMENTS, domain=DOMAIN)
class AppointmentMissedV1(EventPayload):
    """The check-in window of a booked appointment passed without the citizen checking in."""

    appointment_id: AppointmentId
    service_type: ServiceTypeCode
    agency: AgencyCode
    slot_start: AwareDatetime
    window_closed_at: AwareDatetime = Field(description="End of the check-in window that passed.")
    marked_at: AwareDatetime


# --- counters -----------------------------------------------------------------------------------


class CounterCloseReason(StrEnum):
    END_OF_DAY = "end_of_day"
    BREAK = "break"
    STAFF_UNAVAILABLE = "staff_unavailable"
    SYSTEM_OUTAGE = "system_outage"
    OTHER = "other"


@event("CounterOpened", 1, topic=QUEUE_COUNTERS, domain=DOMAIN)
class CounterOpenedV1(EventPayload):
    """An officer opened a counter for calling tickets."""

    counter: CounterCode = Field(description="Counter code (the aggregate id).")
    agency: AgencyCode
    service_types: tuple[Code, ...] = Field(
        min_length=1, description="Service types called at this counter now."
    )
    officer_ref: OfficerRef
    planned: bool = Field(
        default=True, description="Part of the day's counter plan (false for an extra counter)."
    )
    opened_at: AwareDatetime


@event("CounterClosed", 1, topic=QUEUE_COUNTERS, domain=DOMAIN)
class CounterClosedV1(EventPayload):
    """A counter stopped calling tickets."""

    counter: CounterCode
    agency: AgencyCode
    officer_ref: OfficerRef
    reason: CounterCloseReason
    opened_at: AwareDatetime
    closed_at: AwareDatetime
    tickets_served: int = Field(ge=0, description="Tickets completed while it was open.")


# --- SKM survey ---------------------------------------------------------------------------------

Score = Annotated[int, Field(ge=1, le=4)]


class SkmScores(BaseModel):
    """Answers per SKM element (unsur), each 1 (tidak baik) to 4 (sangat baik); unanswered is null.

    Stored by unsur code, never by question position, so a reordered questionnaire changes nothing.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    u1: Score | None = Field(default=None, description="U1 persyaratan.")
    u2: Score | None = Field(default=None, description="U2 sistem, mekanisme, dan prosedur.")
    u3: Score | None = Field(default=None, description="U3 waktu penyelesaian.")
    u4: Score | None = Field(default=None, description="U4 biaya/tarif (a free service scores 4).")
    u5: Score | None = Field(default=None, description="U5 produk spesifikasi jenis pelayanan.")
    u6: Score | None = Field(default=None, description="U6 kompetensi pelaksana.")
    u7: Score | None = Field(default=None, description="U7 perilaku pelaksana.")
    u8: Score | None = Field(default=None, description="U8 sarana dan prasarana.")
    u9: Score | None = Field(default=None, description="U9 penanganan pengaduan, saran, dan masukan.")

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if not self.answered():
            raise ValueError("a survey must answer at least one SKM element")
        return self

    def score(self, element: SkmElement) -> int | None:
        value: int | None = getattr(self, element.value.lower())
        return value

    def answered(self) -> dict[SkmElement, int]:
        """The answered elements and their scores."""
        return {e: s for e in SkmElement if (s := self.score(e)) is not None}


class Education(StrEnum):
    NONE = "none"
    PRIMARY = "primary"
    """SD."""
    JUNIOR_SECONDARY = "junior_secondary"
    """SMP."""
    SENIOR_SECONDARY = "senior_secondary"
    """SMA/SMK."""
    DIPLOMA = "diploma"
    """D1-D3."""
    BACHELOR = "bachelor"
    """D4/S1."""
    MASTER = "master"
    DOCTORATE = "doctorate"


class Occupation(StrEnum):
    CIVIL_SERVANT = "civil_servant"
    """PNS/ASN."""
    MILITARY_POLICE = "military_police"
    """TNI/Polri."""
    PRIVATE_EMPLOYEE = "private_employee"
    ENTREPRENEUR = "entrepreneur"
    STUDENT = "student"
    HOMEMAKER = "homemaker"
    FARMER_FISHER = "farmer_fisher"
    UNEMPLOYED = "unemployed"
    OTHER = "other"


class RespondentProfile(BaseModel):
    """The anonymous respondent profile of the SKM questionnaire; every part may be left out."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sex: Sex | None = None
    age_band: AgeBand | None = None
    education: Education | None = None
    occupation: Occupation | None = None


class SurveyChannel(StrEnum):
    KIOSK = "kiosk"
    ONLINE = "online"
    PAPER = "paper"


@event("SurveySubmitted", 1, topic=QUEUE_SURVEYS, domain=DOMAIN)
class SurveySubmittedV1(EventPayload):
    """An anonymous SKM (Survei Kepuasan Masyarakat) questionnaire was submitted for a service.

    Anonymous by design: no NIK, name, citizen reference, ticket or visit id and no free text, so an
    answer cannot be traced back to a person.
    """

    survey_id: str = Field(description="Survey response id (the aggregate id), random.")
    service_type: ServiceTypeCode
    agency: AgencyCode
    scores: SkmScores
    respondent: RespondentProfile = Field(default_factory=RespondentProfile)
    channel: SurveyChannel
    submitted_at: AwareDatetime


# --- complaints ---------------------------------------------------------------------------------


class ComplaintOutcome(StrEnum):
    UPHELD = "upheld"
    """The complaint was justified and the service was corrected."""
    NOT_UPHELD = "not_upheld"
    INFORMATION_GIVEN = "information_given"
    REFERRED = "referred"
    """Passed to an authority outside the MPP."""
    WITHDRAWN = "withdrawn"


@event("ComplaintReceived", 1, topic=QUEUE_COMPLAINTS, domain=DOMAIN)
class ComplaintReceivedV1(EventPayload):
    """A complaint, question or suggestion was registered (SP4N-LAPOR or a local channel).

    The complaint text stays in the queue service; it may hold personal data.
    """

    complaint_id: ComplaintId
    channel: ComplaintChannel
    category: ComplaintCategory
    complaint_class: ComplaintClass = Field(description="SP4N-LAPOR class; it sets the resolution limit.")
    first_response_limit_days: int = Field(
        default=COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS,
        ge=1,
        description="Working days allowed to the first response.",
    )
    resolution_limit_days: int = Field(ge=1, description="Working days allowed to resolution for this class.")
    anonymous: bool = Field(description="The complainant asked to stay anonymous.")
    complainant_ref: CitizenRef | None = Field(
        default=None, description="Pseudonymous complainant; always none for anonymous complaints."
    )
    agency: AgencyCode | None = Field(
        default=None, description="Agency the complaint is disposed to, once known."
    )
    service_type: ServiceTypeCode | None = Field(
        default=None, description="Service the complaint is about, if any."
    )
    lapor_tracking_id: str | None = Field(
        default=None, description="SP4N-LAPOR tracking number, if it came from there."
    )
    received_at: AwareDatetime

    @model_validator(mode="after")
    def _anonymous_has_no_ref(self) -> Self:
        if self.anonymous and self.complainant_ref is not None:
            raise ValueError("an anonymous complaint must not carry a complainant_ref")
        return self


@event("ComplaintResponded", 1, topic=QUEUE_COMPLAINTS, domain=DOMAIN)
class ComplaintRespondedV1(EventPayload):
    """The first response to a complaint was sent to the complainant."""

    complaint_id: ComplaintId
    channel: ComplaintChannel
    category: ComplaintCategory
    complaint_class: ComplaintClass
    agency: AgencyCode | None = Field(default=None, description="Agency that responded.")
    officer_ref: OfficerRef
    received_at: AwareDatetime
    responded_at: AwareDatetime
    working_days_elapsed: int = Field(ge=0)
    within_limit: bool = Field(description="Responded within the first-response limit.")


@event("ComplaintResolved", 1, topic=QUEUE_COMPLAINTS, domain=DOMAIN)
class ComplaintResolvedV1(EventPayload):
    """A complaint was resolved (followed up and closed)."""

    complaint_id: ComplaintId
    channel: ComplaintChannel
    category: ComplaintCategory
    complaint_class: ComplaintClass
    anonymous: bool
    agency: AgencyCode | None = None
    service_type: ServiceTypeCode | None = None
    outcome: ComplaintOutcome
    received_at: AwareDatetime
    resolved_at: AwareDatetime
    working_days_elapsed: int = Field(ge=0)
    within_limit: bool = Field(description="Resolved within the class's resolution limit.")
