"""Value types shared by event payloads."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
"""A master-data code: site, agency, service type or counter code."""

CitizenRef = Annotated[
    str,
    StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    Field(
        description=(
            "Pseudonymous citizen reference issued by the identity service (a keyed hash of the NIK). "
            "It identifies the same citizen across events without revealing who they are."
        )
    ),
]

Nik = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{16}$"),
]
"""A 16-digit Nomor Induk Kependudukan. Always personal data."""


class Channel(StrEnum):
    """How the citizen reached the service."""

    WALK_IN = "walk_in"
    ONLINE = "online"
    MPP_DIGITAL = "mpp_digital"


class DurationUnit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    WORKING_DAYS = "working_days"


KabKotaCode = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4}$"),
    Field(description="Kemendagri kabupaten/kota code: province (2) + kabupaten/kota (2), e.g. 3273."),
]

ProvinceCode = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{2}$"),
    Field(description="Kemendagri province code, e.g. 32 for Jawa Barat."),
]

OfficerRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    Field(description="Officer's user id in the platform (never a name or NIP)."),
]


class Sex(StrEnum):
    """Sex as recorded in the civil registry (and encoded in the NIK)."""

    MALE = "male"
    FEMALE = "female"


class AgeBand(StrEnum):
    """Coarse age band; ``60_plus`` is the lansia priority threshold."""

    UNDER_17 = "under_17"
    FROM_17_TO_25 = "17_25"
    FROM_26_TO_35 = "26_35"
    FROM_36_TO_45 = "36_45"
    FROM_46_TO_59 = "46_59"
    SIXTY_PLUS = "60_plus"

    @classmethod
    def of(cls, age: int) -> AgeBand:
        """The band of an age in whole years."""
        if age < 17:
            return cls.UNDER_17
        for upper, band in ((25, cls.FROM_17_TO_25), (35, cls.FROM_26_TO_35), (45, cls.FROM_36_TO_45)):
            if age <= upper:
                return band
        return cls.FROM_46_TO_59 if age < 60 else cls.SIXTY_PLUS


class PriorityGroup(StrEnum):
    """Priority group served first at the queue. Disability and pregnancy are flagged by staff,
    never inferred; only the fact of priority service is recorded."""

    LANSIA = "lansia"
    DISABILITAS = "disabilitas"
    IBU_HAMIL = "ibu_hamil"
    ANAK = "anak"
    KORBAN_BENCANA = "korban_bencana"
    NONE = "none"


class SkmElement(StrEnum):
    """The nine elements (unsur) of the SKM survey, PermenPANRB 14/2017."""

    U1 = "U1"
    U2 = "U2"
    U3 = "U3"
    U4 = "U4"
    U5 = "U5"
    U6 = "U6"
    U7 = "U7"
    U8 = "U8"
    U9 = "U9"

    @property
    def label(self) -> str:
        """The element's name in Bahasa Indonesia."""
        return SKM_ELEMENT_LABELS[self]


SKM_ELEMENT_LABELS: dict[SkmElement, str] = {
    SkmElement.U1: "Persyaratan",
    SkmElement.U2: "Sistem, mekanisme, dan prosedur",
    SkmElement.U3: "Waktu penyelesaian",
    SkmElement.U4: "Biaya/tarif",
    SkmElement.U5: "Produk spesifikasi jenis pelayanan",
    SkmElement.U6: "Kompetensi pelaksana",
    SkmElement.U7: "Perilaku pelaksana",
    SkmElement.U8: "Sarana dan prasarana",
    SkmElement.U9: "Penanganan pengaduan, saran, dan masukan",
}


class ComplaintChannel(StrEnum):
    """Where a complaint came in."""

    SP4N_LAPOR = "sp4n_lapor"
    COUNTER = "counter"
    SUGGESTION_BOX = "suggestion_box"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    PHONE = "phone"
    WEBSITE = "website"
    SOCIAL_MEDIA = "social_media"
    MPP_DIGITAL = "mpp_digital"


class ComplaintCategory(StrEnum):
    """What a complaint is about (follows the SKM elements where they fit)."""

    REQUIREMENTS = "requirements"
    PROCEDURE = "procedure"
    SERVICE_TIME = "service_time"
    FEES = "fees"
    PRODUCT = "product"
    STAFF_CONDUCT = "staff_conduct"
    FACILITIES = "facilities"
    QUEUE = "queue"
    INFORMATION = "information"
    ILLEGAL_LEVY = "illegal_levy"
    OTHER = "other"


class ComplaintClass(StrEnum):
    """SP4N-LAPOR classification; it sets the resolution time limit."""

    INFORMATION_REQUEST = "information_request"
    COMPLAINT = "complaint"
    DISPUTE = "dispute"
    DISPUTE_FIELD_INSPECTION = "dispute_field_inspection"

    @property
    def resolution_limit_days(self) -> int:
        """Days to resolve under SP4N-LAPOR (local SOPs count them as working days)."""
        return COMPLAINT_RESOLUTION_LIMIT_DAYS[self]


COMPLAINT_FIRST_RESPONSE_LIMIT_DAYS = 3
"""SP4N-LAPOR limit for the first response (local SOPs often use 2 working days)."""

COMPLAINT_RESOLUTION_LIMIT_DAYS: dict[ComplaintClass, int] = {
    ComplaintClass.INFORMATION_REQUEST: 5,
    ComplaintClass.COMPLAINT: 5,
    ComplaintClass.DISPUTE: 14,
    ComplaintClass.DISPUTE_FIELD_INSPECTION: 60,
}


AgencyCode = Annotated[Code, Field(description="Agency (tenant) code from the catalogue, e.g. disdukcapil.")]
ServiceTypeCode = Annotated[
    Code, Field(description="Service type code from the catalogue, e.g. dpmptsp.pbg.")
]
CounterCode = Annotated[Code, Field(description="Counter code from the catalogue, e.g. loket-02.")]
