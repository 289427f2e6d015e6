"""Identity (Disdukcapil) events: civil registry document applications and NIK verification.

Document application events travel on ``mpp.identity.document-applications`` keyed by the
application id. A verification request carries the NIK, so it travels on its own personal-data topic
``mpp.identity.verification-requests`` that only the identity service reads; the answer comes back on
``mpp.identity.verification-results`` with a pseudonymous citizen reference instead of the NIK.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from mpp.contracts.envelope import EventPayload, event, personal
from mpp.contracts.events.common import (
    AgeBand,
    AgencyCode,
    Channel,
    CitizenRef,
    Code,
    KabKotaCode,
    Nik,
    OfficerRef,
    ServiceTypeCode,
)
from mpp.contracts.topics import (
    IDENTITY_DOCUMENT_APPLICATIONS,
    IDENTITY_VERIFICATION_REQUESTS,
    IDENTITY_VERIFICATION_RESULTS,
)

DOMAIN = "identity"

VERIFIER_PRODUCER = "mpp.identity"
"""Envelope ``producer`` of every CitizenVerified and CitizenVerificationFailed: only the identity service
answers verification requests, and askers ignore answers from any other producer."""
VERIFIER_AGENCY = "disdukcapil"
"""Envelope ``agency`` of every verification answer (the civil registry)."""


ApplicationId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Document application id: the record key of mpp.identity.document-applications.",
    ),
]
RequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Verification request id: the record key of both verification topics.",
    ),
]
CaseId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="The application, ticket or appointment the verification is for.",
    ),
]


class DocumentKind(StrEnum):
    """Civil registry (adminduk) document."""

    KTP_EL = "ktp_el"
    KK = "kk"
    AKTA_KELAHIRAN = "akta_kelahiran"
    AKTA_KEMATIAN = "akta_kematian"
    AKTA_PERKAWINAN = "akta_perkawinan"
    AKTA_PERCERAIAN = "akta_perceraian"
    KIA = "kia"
    SURAT_PINDAH = "surat_pindah"
    IKD = "ikd"


class DocumentApplicationReason(StrEnum):
    """Why the document is requested."""

    NEW = "new"
    DATA_CHANGE = "data_change"
    LOST = "lost"
    DAMAGED = "damaged"
    OTHER = "other"


class DocumentMedium(StrEnum):
    """How the issued document was delivered."""

    PRINTED = "printed"
    ELECTRONIC = "electronic"


class VerificationPurpose(StrEnum):
    """Why an agency asks to verify a NIK (purpose limitation, UU 27/2022 PDP)."""

    PERMIT_APPLICATION = "permit_application"
    DOCUMENT_APPLICATION = "document_application"
    QUEUE_PRIORITY = "queue_priority"
    APPOINTMENT = "appointment"
    SERVICE_ELIGIBILITY = "service_eligibility"


class VerificationFailure(StrEnum):
    """Why a NIK could not be verified."""

    INVALID_STRUCTURE = "invalid_structure"
    NOT_FOUND = "not_found"
    INACTIVE = "inactive"
    """Recorded as deceased, duplicate or otherwise no longer active."""
    NOT_AUTHORISED = "not_authorised"
    """The requesting agency may not verify for this purpose."""
    REGISTRY_UNAVAILABLE = "registry_unavailable"


@event("DocumentApplicationSubmitted", 1, topic=IDENTITY_DOCUMENT_APPLICATIONS, domain=DOMAIN)
class DocumentApplicationSubmittedV1(EventPayload):
    """A citizen applied for a civil registry document at a counter or online."""

    application_id: ApplicationId
    service_type: ServiceTypeCode = Field(description="Service type code from the site's catalogue.")
    document_kind: DocumentKind
    reason: DocumentApplicationReason = Field(description="New document, data change, lost or damaged.")
    applicant_ref: CitizenRef
    subject_ref: CitizenRef | None = Field(
        default=None,
        description="The citizen the document is about when not the applicant (e.g. a child); none when "
        "the subject has no NIK yet, as for a birth certificate.",
    )
    channel: Channel = Field(description="Walk-in at the counter or an online channel.")
    tracking_code: str = Field(
        description="Code the citizen uses to follow the application without logging in."
    )
    submitted_at: AwareDatetime
    documents: int = Field(ge=0, description="Number of attached requirement documents.")
    sla_due_on: date | None = Field(default=None, description="Due date from the service standard, if known.")


@event("DocumentApplicationReturned", 1, topic=IDENTITY_DOCUMENT_APPLICATIONS, domain=DOMAIN)
class DocumentApplicationReturnedV1(EventPayload):
    """The application went back to the applicant for correction; the SLA clock stops."""

    application_id: ApplicationId
    service_type: ServiceTypeCode
    document_kind: DocumentKind
    applicant_ref: CitizenRef
    missing: tuple[str, ...] = Field(description="Requirement codes that are missing or must be corrected.")
    note: str = Field(
        default="", max_length=1000, description="Officer's note to the applicant (no personal data)."
    )
    officer_ref: OfficerRef
    returned_at: AwareDatetime


@event("DocumentApplicationRejected", 1, topic=IDENTITY_DOCUMENT_APPLICATIONS, domain=DOMAIN)
class DocumentApplicationRejectedV1(EventPayload):
    """The application was rejected, with a reason."""

    application_id: ApplicationId
    service_type: ServiceTypeCode
    document_kind: DocumentKind
    applicant_ref: CitizenRef
    officer_ref: OfficerRef
    reason_code: Code = Field(description="Stable reason code, e.g. not_eligible or duplicate_application.")
    reason: str = Field(max_length=1000, description="Reason shown to the applicant (no personal data).")
    rejected_at: AwareDatetime


@event("DocumentIssued", 1, topic=IDENTITY_DOCUMENT_APPLICATIONS, domain=DOMAIN)
class DocumentIssuedV1(EventPayload):
    """A civil registry document was issued for an application.

    The event carries an opaque document reference, never the document's number: a KTP-el number is
    the NIK, and KK and akta numbers identify a person or family just as well.
    """

    application_id: ApplicationId
    service_type: ServiceTypeCode
    document_kind: DocumentKind
    applicant_ref: CitizenRef
    document_ref: str = Field(
        min_length=1,
        max_length=64,
        description="Opaque reference to the issued document in the civil registry; never the NIK, KK or "
        "akta number.",
    )
    medium: DocumentMedium = Field(description="Printed at the counter or delivered electronically.")
    issued_at: AwareDatetime
    submitted_at: AwareDatetime
    working_days_elapsed: int | None = Field(
        default=None, ge=0, description="SLA clock at issue, excluding time the application was returned."
    )
    within_sla: bool | None = Field(
        default=None, description="Finished within the published service standard."
    )


@event("CitizenVerificationRequested", 1, topic=IDENTITY_VERIFICATION_REQUESTS, domain=DOMAIN)
class CitizenVerificationRequestedV1(EventPayload):
    """An agency service asks the identity service to verify a NIK and return a citizen reference.

    Personal data: this event travels only on the verification-requests topic, which only the
    identity service reads.
    """

    request_id: RequestId
    nik: Nik = personal("The NIK to verify.")
    requesting_agency: AgencyCode = Field(description="Agency code of the service asking.")
    requesting_service: str = Field(description="Producing service, e.g. mpp.licensing.")
    officer_ref: OfficerRef | None = Field(
        default=None, description="Officer who asked, if the request comes from a counter."
    )
    case_id: CaseId
    purpose: VerificationPurpose
    requested_at: AwareDatetime


@event("CitizenVerified", 1, topic=IDENTITY_VERIFICATION_RESULTS, domain=DOMAIN)
class CitizenVerifiedV1(EventPayload):
    """The NIK of a verification request exists and is active; here is the citizen's reference."""

    request_id: RequestId
    case_id: CaseId
    requesting_agency: AgencyCode
    citizen_ref: CitizenRef
    age_band: AgeBand = Field(description="Age band on the day of verification.")
    elderly_priority: bool = Field(description="Lansia (60 or over): the citizen may be served first.")
    domicile_kabkota: KabKotaCode | None = Field(
        default=None, description="Kabupaten/kota of the registered domicile, when the registry knows it."
    )
    verified_at: AwareDatetime


@event("CitizenVerificationFailed", 1, topic=IDENTITY_VERIFICATION_RESULTS, domain=DOMAIN)
class CitizenVerificationFailedV1(EventPayload):
    """A verification request could not be answered with a citizen reference."""

    request_id: RequestId
    case_id: CaseId
    requesting_agency: AgencyCode
    reason_code: VerificationFailure
    reason: str = Field(
        max_length=500,
        description="Explanation for the officer in Bahasa Indonesia (never contains the NIK).",
    )
    retryable: bool = Field(description="Asking again later may succeed (e.g. the registry was unavailable).")
    failed_at: AwareDatetime
