"""Licensing (DPMPTSP) events: the permit application lifecycle.

All events of one application travel on ``mpp.licensing.applications`` keyed by the application id.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from mpp.contracts.envelope import EventPayload, event
from mpp.contracts.events.common import Channel, CitizenRef, Code
from mpp.contracts.topics import LICENSING_APPLICATIONS

DOMAIN = "licensing"


@event("ApplicationSubmitted", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationSubmittedV1(EventPayload):
    """A citizen or business submitted a permit application at a counter or online."""

    application_id: str = Field(description="Application id (the aggregate id).")
    service_type: Code = Field(description="Service type code from the site's catalogue.")
    applicant_ref: CitizenRef
    channel: Channel = Field(description="Walk-in at the counter or an online channel.")
    tracking_code: str = Field(
        description="Code the citizen uses to follow the application without logging in."
    )
    submitted_at: datetime
    documents: int = Field(ge=0, description="Number of attached requirement documents.")
    sla_due_on: date | None = Field(default=None, description="Due date from the service standard, if known.")


@event("ApplicationVerified", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationVerifiedV1(EventPayload):
    """An officer checked the application's requirements and found them complete."""

    application_id: str
    service_type: Code
    officer_ref: str = Field(description="Officer's user id (not a name).")
    verified_at: datetime


@event("ApplicationReturned", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationReturnedV1(EventPayload):
    """The application went back to the applicant for correction; the SLA clock stops."""

    application_id: str
    service_type: Code
    applicant_ref: CitizenRef
    missing: tuple[str, ...] = Field(description="Requirement codes that are missing or must be corrected.")
    note: str = Field(
        default="", max_length=1000, description="Officer's note to the applicant (no personal data)."
    )
    returned_at: datetime


@event("ApplicationResubmitted", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationResubmittedV1(EventPayload):
    """The applicant corrected a returned application; the SLA clock runs again."""

    application_id: str
    service_type: Code
    resubmitted_at: datetime


@event("ApplicationApproved", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationApprovedV1(EventPayload):
    """An authorised officer approved the application."""

    application_id: str
    service_type: Code
    applicant_ref: CitizenRef
    officer_ref: str
    approved_at: datetime
    submitted_at: datetime
    working_days_elapsed: int | None = Field(default=None, ge=0, description="SLA clock at approval.")


@event("ApplicationRejected", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationRejectedV1(EventPayload):
    """The application was rejected, with a reason."""

    application_id: str
    service_type: Code
    applicant_ref: CitizenRef
    officer_ref: str
    reason_code: str
    reason: str = Field(max_length=1000, description="Reason shown to the applicant (no personal data).")
    rejected_at: datetime


@event("PermitIssued", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class PermitIssuedV1(EventPayload):
    """A permit was issued for an approved application."""

    application_id: str
    permit_number: str = Field(description="Formatted permit number printed on the permit.")
    service_type: Code
    applicant_ref: CitizenRef
    issued_at: datetime
    valid_until: date | None = Field(default=None, description="Expiry date; none for permits without one.")
    submitted_at: datetime
    within_sla: bool | None = Field(
        default=None, description="Finished within the published service standard."
    )


@event("PermitRevoked", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class PermitRevokedV1(EventPayload):
    """An issued permit was revoked."""

    application_id: str
    permit_number: str
    service_type: Code
    reason: str = Field(max_length=1000)
    revoked_at: datetime


@event("ApplicationSlaBreached", 1, topic=LICENSING_APPLICATIONS, domain=DOMAIN)
class ApplicationSlaBreachedV1(EventPayload):
    """The application passed its service-standard time limit without being finished (emitted once)."""

    application_id: str
    service_type: Code
    sla_value: int = Field(ge=1)
    sla_unit: str = Field(description="minutes, hours or working_days")
    due_at: datetime
    breached_at: datetime
