"""A valid, realistic example of every registered event, for documentation, tests and demos.

Examples are deterministic (fixed ids and times at the fictional MPP Kota Sukamaju) and hold no real
personal data: the NIK is synthetic and citizen references are invented.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from mpp.contracts.envelope import Envelope, EventPayload, registered_events
from mpp.contracts.events import identity, licensing, notification, queue, reporting
from mpp.contracts.events.common import (
    AgeBand,
    Channel,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    PriorityGroup,
    Sex,
    SkmElement,
)
from mpp.contracts.nik import generate_test_nik

SITE = "mpp-kota-sukamaju"
WIB = timezone(timedelta(hours=7), "WIB")
DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, 8, 14, 5, tzinfo=WIB)
CITIZEN = "cz_5Jw2Qe8RbT1mXa7K"
OFFICER = "usr-dukcapil-017"
CORRELATION = "req-2026-03-02-0042"
NAMESPACE = uuid.UUID("5b0e2f8e-6a43-4c1e-9d51-2f0b8a6c1d00")


@dataclass(frozen=True)
class Example:
    payload: EventPayload
    subject: str
    agency: str
    producer: str


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _licensing() -> list[Example]:
    app, svc = "lic-2026-000318", "dpmptsp.pbg"
    common: dict[str, Any] = {"application_id": app, "service_type": svc}
    owner: dict[str, Any] = {"subject": app, "agency": "dpmptsp", "producer": "mpp.licensing"}
    return [
        Example(
            licensing.ApplicationSubmittedV1(
                **common,
                applicant_ref=CITIZEN,
                channel=Channel.ONLINE,
                tracking_code="PBG-7K3M-2Q",
                submitted_at=_at(0),
                documents=5,
                sla_due_on=date(2026, 4, 21),
            ),
            **owner,
        ),
        Example(
            licensing.ApplicationVerifiedV1(
                **common, officer_ref="usr-dpmptsp-004", verified_at=_at(60 * 24)
            ),
            **owner,
        ),
        Example(
            licensing.ApplicationReturnedV1(
                **common,
                applicant_ref=CITIZEN,
                missing=("gambar-teknis",),
                note="Gambar struktur belum ditandatangani tenaga ahli.",
                returned_at=_at(60 * 26),
            ),
            **owner,
        ),
        Example(licensing.ApplicationResubmittedV1(**common, resubmitted_at=_at(60 * 72)), **owner),
        Example(
            licensing.ApplicationApprovedV1(
                **common,
                applicant_ref=CITIZEN,
                officer_ref="usr-dpmptsp-001",
                approved_at=_at(60 * 24 * 30),
                submitted_at=_at(0),
                working_days_elapsed=21,
            ),
            **owner,
        ),
        Example(
            licensing.ApplicationRejectedV1(
                **common,
                applicant_ref=CITIZEN,
                officer_ref="usr-dpmptsp-001",
                reason_code="kkpr_mismatch",
                reason="Fungsi bangunan tidak sesuai dengan KKPR.",
                rejected_at=_at(60 * 24 * 20),
            ),
            **owner,
        ),
        Example(
            licensing.PermitIssuedV1(
                **common,
                permit_number="PBG-329801-02032026-01",
                applicant_ref=CITIZEN,
                issued_at=_at(60 * 24 * 31),
                submitted_at=_at(0),
                within_sla=True,
            ),
            **owner,
        ),
        Example(
            licensing.PermitRevokedV1(
                **common,
                permit_number="PBG-329801-02032026-01",
                reason="Bangunan didirikan tidak sesuai dengan PBG.",
                revoked_at=_at(60 * 24 * 200),
            ),
            **owner,
        ),
        Example(
            licensing.ApplicationSlaBreachedV1(
                **common,
                sla_value=28,
                sla_unit="working_days",
                due_at=datetime(2026, 4, 21, 16, 0, tzinfo=WIB),
                breached_at=datetime(2026, 4, 21, 16, 0, 1, tzinfo=WIB),
            ),
            **owner,
        ),
    ]


def _identity() -> list[Example]:
    app = "dok-2026-004511"
    common: dict[str, Any] = {
        "application_id": app,
        "service_type": "disdukcapil.akta-kelahiran",
        "document_kind": identity.DocumentKind.AKTA_KELAHIRAN,
    }
    owner: dict[str, Any] = {"subject": app, "agency": "disdukcapil", "producer": "mpp.identity"}
    request = "ver-2026-019377"
    asked: dict[str, Any] = {
        "request_id": request,
        "case_id": "lic-2026-000318",
        "requesting_agency": "dpmptsp",
    }
    answered: dict[str, Any] = {"subject": request, "agency": "disdukcapil", "producer": "mpp.identity"}
    return [
        Example(
            identity.DocumentApplicationSubmittedV1(
                **common,
                reason=identity.DocumentApplicationReason.NEW,
                applicant_ref=CITIZEN,
                channel=Channel.WALK_IN,
                tracking_code="AKL-4F9Q-7T",
                submitted_at=_at(12),
                documents=4,
                sla_due_on=date(2026, 3, 3),
            ),
            **owner,
        ),
        Example(
            identity.DocumentApplicationReturnedV1(
                **common,
                applicant_ref=CITIZEN,
                missing=("surat-lahir",),
                note="Surat keterangan lahir belum dilegalisasi fasilitas kesehatan.",
                officer_ref=OFFICER,
                returned_at=_at(20),
            ),
            **owner,
        ),
        Example(
            identity.DocumentApplicationRejectedV1(
                **common,
                applicant_ref=CITIZEN,
                officer_ref=OFFICER,
                reason_code="duplicate_application",
                reason="Akta kelahiran untuk anak ini sudah pernah diterbitkan.",
                rejected_at=_at(25),
            ),
            **owner,
        ),
        Example(
            identity.DocumentIssuedV1(
                **common,
                applicant_ref=CITIZEN,
                document_ref="doc_8c1f0e2a9b7d4c3e",
                medium=identity.DocumentMedium.ELECTRONIC,
                issued_at=_at(45),
                submitted_at=_at(12),
                working_days_elapsed=0,
                within_sla=True,
            ),
            **owner,
        ),
        Example(
            identity.CitizenVerificationRequestedV1(
                **asked,
                nik=generate_test_nik(random.Random(20260302), province_code="32", today=DAY),
                requesting_service="mpp.licensing",
                officer_ref="usr-dpmptsp-004",
                purpose=identity.VerificationPurpose.PERMIT_APPLICATION,
                requested_at=_at(1),
            ),
            subject=request,
            agency="dpmptsp",
            producer="mpp.licensing",
        ),
        Example(
            identity.CitizenVerifiedV1(
                **asked,
                citizen_ref=CITIZEN,
                age_band=AgeBand.FROM_36_TO_45,
                elderly_priority=False,
                domicile_kabkota="3298",
                verified_at=_at(1.05),
            ),
            **answered,
        ),
        Example(
            identity.CitizenVerificationFailedV1(
                **asked,
                reason_code=identity.VerificationFailure.NOT_FOUND,
                reason="NIK tidak ditemukan dalam database kependudukan.",
                retryable=False,
                failed_at=_at(1.05),
            ),
            **answered,
        ),
    ]


def _queue() -> list[Example]:
    visit, ticket, svc = "vis-20260302-0147", "tik-20260302-0198", "disdukcapil.ktp-el-cetak"
    on_visit: dict[str, Any] = {"subject": visit, "agency": "disdukcapil", "producer": "mpp.queue"}
    ticket_common: dict[str, Any] = {
        "visit_id": visit,
        "ticket_id": ticket,
        "service_type": svc,
        "agency": "disdukcapil",
    }
    appointment = "apt-20260302-0031"
    on_appointment: dict[str, Any] = {
        "subject": appointment,
        "agency": "bpjs-kesehatan",
        "producer": "mpp.queue",
    }
    apt_common: dict[str, Any] = {
        "appointment_id": appointment,
        "service_type": "bpjs-kesehatan.kepesertaan",
        "agency": "bpjs-kesehatan",
    }
    slot = datetime(2026, 3, 2, 9, 30, tzinfo=WIB)
    complaint = "adu-2026-000087"
    on_complaint: dict[str, Any] = {"subject": complaint, "agency": "dpmptsp", "producer": "mpp.queue"}
    complaint_common: dict[str, Any] = {
        "complaint_id": complaint,
        "channel": ComplaintChannel.SP4N_LAPOR,
        "category": ComplaintCategory.SERVICE_TIME,
        "complaint_class": ComplaintClass.COMPLAINT,
    }
    return [
        Example(
            queue.VisitStartedV1(
                visit_id=visit, channel=Channel.WALK_IN, citizen_ref=CITIZEN, started_at=_at(0)
            ),
            subject=visit,
            agency="dpmptsp",
            producer="mpp.queue",
        ),
        Example(
            queue.VisitEndedV1(
                visit_id=visit,
                started_at=_at(0),
                ended_at=_at(41),
                duration_seconds=41 * 60,
                tickets=1,
                tickets_served=1,
            ),
            subject=visit,
            agency="dpmptsp",
            producer="mpp.queue",
        ),
        Example(
            queue.TicketIssuedV1(
                **ticket_common,
                ticket_number="A-012",
                priority_group=PriorityGroup.LANSIA,
                channel=Channel.WALK_IN,
                issued_at=_at(1),
            ),
            **on_visit,
        ),
        Example(
            queue.TicketCalledV1(
                **ticket_common,
                ticket_number="A-012",
                counter="loket-02",
                officer_ref=OFFICER,
                called_at=_at(19),
                waiting_seconds=18 * 60,
            ),
            **on_visit,
        ),
        Example(
            queue.ServiceStartedV1(
                **ticket_common,
                counter="loket-02",
                officer_ref=OFFICER,
                started_at=_at(20),
                walking_seconds=60,
            ),
            **on_visit,
        ),
        Example(
            queue.ServiceCompletedV1(
                **ticket_common,
                ticket_number="A-012",
                counter="loket-02",
                officer_ref=OFFICER,
                priority_group=PriorityGroup.LANSIA,
                channel=Channel.WALK_IN,
                issued_at=_at(1),
                completed_at=_at(32),
                waiting_seconds=18 * 60,
                walking_seconds=60,
                service_seconds=12 * 60,
                total_seconds=31 * 60,
                application_id="dok-2026-004512",
            ),
            **on_visit,
        ),
        Example(
            queue.TicketNoShowV1(
                **ticket_common, counter="loket-02", call_count=3, waiting_seconds=18 * 60, marked_at=_at(25)
            ),
            **on_visit,
        ),
        Example(
            queue.TicketTransferredV1(
                visit_id=visit,
                ticket_id=ticket,
                from_service_type=svc,
                to_service_type="disdukcapil.kk",
                from_agency="disdukcapil",
                to_agency="disdukcapil",
                from_counter="loket-02",
                to_counter="loket-03",
                officer_ref=OFFICER,
                reason="Perlu pembaruan Kartu Keluarga terlebih dahulu.",
                transferred_at=_at(24),
            ),
            **on_visit,
        ),
        Example(
            queue.TicketCancelledV1(
                **ticket_common,
                cancelled_by=queue.CancelledBy.CITIZEN,
                reason_code="citizen_left",
                cancelled_at=_at(15),
                waiting_seconds=14 * 60,
            ),
            **on_visit,
        ),
        Example(
            queue.AppointmentBookedV1(
                **apt_common,
                citizen_ref=CITIZEN,
                channel=Channel.MPP_DIGITAL,
                booking_code="BK-93QF",
                slot_start=slot,
                slot_end=slot + timedelta(minutes=15),
                booked_at=datetime(2026, 2, 27, 20, 11, tzinfo=WIB),
            ),
            **on_appointment,
        ),
        Example(
            queue.AppointmentCancelledV1(
                **apt_common,
                cancelled_by=queue.CancelledBy.CITIZEN,
                reason_code="citizen_request",
                slot_start=slot,
                cancelled_at=datetime(2026, 3, 1, 19, 2, tzinfo=WIB),
            ),
            **on_appointment,
        ),
        Example(
            queue.AppointmentCheckedInV1(
                **apt_common,
                visit_id="vis-20260302-0160",
                ticket_id="tik-20260302-0215",
                slot_start=slot,
                checked_in_at=slot - timedelta(minutes=7),
                offset_seconds=-7 * 60,
            ),
            **on_appointment,
        ),
        Example(
            queue.AppointmentMissedV1(
                **apt_common,
                slot_start=slot,
                window_closed_at=slot + timedelta(minutes=15),
                marked_at=slot + timedelta(minutes=16),
            ),
            **on_appointment,
        ),
        Example(
            queue.CounterOpenedV1(
                counter="loket-02",
                agency="disdukcapil",
                service_types=("disdukcapil.ktp-el-cetak", "disdukcapil.ktp-el-rekam"),
                officer_ref=OFFICER,
                opened_at=datetime(2026, 3, 2, 7, 58, tzinfo=WIB),
            ),
            subject="loket-02",
            agency="disdukcapil",
            producer="mpp.queue",
        ),
        Example(
            queue.CounterClosedV1(
                counter="loket-02",
                agency="disdukcapil",
                officer_ref=OFFICER,
                reason=queue.CounterCloseReason.END_OF_DAY,
                opened_at=datetime(2026, 3, 2, 7, 58, tzinfo=WIB),
                closed_at=datetime(2026, 3, 2, 16, 4, tzinfo=WIB),
                tickets_served=46,
            ),
            subject="loket-02",
            agency="disdukcapil",
            producer="mpp.queue",
        ),
        Example(
            queue.SurveySubmittedV1(
                survey_id="skm-3f7a9c21d4",
                service_type=svc,
                agency="disdukcapil",
                scores=queue.SkmScores(u1=4, u2=3, u3=3, u4=4, u5=4, u6=3, u7=4, u8=3, u9=None),
                respondent=queue.RespondentProfile(
                    sex=Sex.FEMALE,
                    age_band=AgeBand.FROM_26_TO_35,
                    education=queue.Education.BACHELOR,
                    occupation=queue.Occupation.PRIVATE_EMPLOYEE,
                ),
                channel=queue.SurveyChannel.KIOSK,
                submitted_at=_at(34),
            ),
            subject="skm-3f7a9c21d4",
            agency="disdukcapil",
            producer="mpp.queue",
        ),
        Example(
            queue.ComplaintReceivedV1(
                **complaint_common,
                resolution_limit_days=ComplaintClass.COMPLAINT.resolution_limit_days,
                anonymous=True,
                agency="dpmptsp",
                service_type="dpmptsp.pbg",
                lapor_tracking_id="LAPOR-5821937",
                received_at=_at(90),
            ),
            **on_complaint,
        ),
        Example(
            queue.ComplaintRespondedV1(
                **complaint_common,
                agency="dpmptsp",
                officer_ref="usr-dpmptsp-009",
                received_at=_at(90),
                responded_at=_at(60 * 24 + 30),
                working_days_elapsed=1,
                within_limit=True,
            ),
            **on_complaint,
        ),
        Example(
            queue.ComplaintResolvedV1(
                **complaint_common,
                anonymous=True,
                agency="dpmptsp",
                service_type="dpmptsp.pbg",
                outcome=queue.ComplaintOutcome.UPHELD,
                received_at=_at(90),
                resolved_at=_at(60 * 24 * 3),
                working_days_elapsed=3,
                within_limit=True,
            ),
            **on_complaint,
        ),
    ]


def _notification() -> list[Example]:
    note = "ntf-20260302-5512"
    trigger = uuid.uuid5(NAMESPACE, "TicketCalled")
    common: dict[str, Any] = {
        "notification_id": note,
        "provider": "wa-gateway-1",
        "message_kind": notification.MessageKind.TICKET_CALLED,
        "trigger_event_id": trigger,
    }
    owner: dict[str, Any] = {"subject": note, "agency": "disdukcapil", "producer": "mpp.notification"}
    contact: dict[str, Any] = {"subject": CITIZEN, "agency": "disdukcapil", "producer": "mpp.queue"}
    channel = notification.NotificationChannel.WHATSAPP
    return [
        Example(
            notification.NotificationSentV1(
                **common,
                citizen_ref=CITIZEN,
                channel=channel,
                template="ticket-called-id",
                trigger_event_type="TicketCalled",
                provider_message_id="wamid.HBgLNjI4MTIzNDU2Nzg5",
                sent_at=_at(19.02),
            ),
            **owner,
        ),
        Example(
            notification.NotificationDeliveredV1(
                **common, channel=channel, sent_at=_at(19.02), delivered_at=_at(19.05), read_at=_at(19.3)
            ),
            **owner,
        ),
        Example(
            notification.NotificationFailedV1(
                **common,
                citizen_ref=CITIZEN,
                channel=channel,
                reason=notification.DeliveryFailure.PROVIDER_UNAVAILABLE,
                provider_error_code="503",
                attempts=3,
                final=True,
                failed_at=_at(21),
            ),
            **owner,
        ),
        Example(
            notification.CitizenContactRegisteredV1(
                citizen_ref=CITIZEN,
                phone="+6281200000042",
                email="warga.contoh@example.org",
                whatsapp=True,
                preferred_channel=channel,
                optional_messages_consent=False,
                consent_recorded_at=_at(0.5),
                source_agency="disdukcapil",
                registered_at=_at(0.5),
            ),
            **contact,
        ),
        Example(
            notification.CitizenContactWithdrawnV1(citizen_ref=CITIZEN, withdrawn_at=_at(60 * 24 * 10)),
            **contact,
        ),
    ]


def _reporting() -> list[Example]:
    skm = reporting.SkmTotals(
        respondents=29,
        elements=tuple(
            reporting.SkmElementTotal(element=e, answers=29, score_sum=s)
            for e, s in zip(SkmElement, (105, 101, 100, 116, 102, 105, 106, 105, 115), strict=True)
        ),
    )
    hourly = (0,) * 7 + (14, 61, 58, 47, 31, 22, 35, 26, 9) + (0,) * 8
    services = (
        reporting.ServiceDayTotals(
            agency="disdukcapil",
            service_type="disdukcapil.ktp-el-cetak",
            visitors=118,
            tickets_issued=121,
            tickets_walk_in=97,
            tickets_online=9,
            tickets_mpp_digital=15,
            tickets_served=112,
            tickets_no_show=6,
            tickets_cancelled=3,
            priority_tickets=reporting.PriorityTickets(lansia=9, disabilitas=2, ibu_hamil=3),
            appointments_booked=26,
            appointments_checked_in=24,
            applications_submitted=112,
            applications_finished=109,
            applications_finished_within_sla=107,
            documents_issued=109,
            waiting=reporting.DurationTotals(
                count=118, sum_seconds=118 * 1090, histogram=(21, 25, 24, 19, 17, 9, 3, 0, 0, 0)
            ),
            service=reporting.DurationTotals(
                count=112, sum_seconds=112 * 540, histogram=(8, 31, 44, 18, 7, 3, 1, 0, 0)
            ),
            skm=skm,
        ),
        reporting.ServiceDayTotals(
            agency="dpmptsp",
            service_type="dpmptsp.pbg",
            visitors=7,
            tickets_issued=7,
            tickets_walk_in=7,
            tickets_served=7,
            tickets_transferred_in=1,
            tickets_issued_by_hour=(0,) * 8 + (3, 4) + (0,) * 14,
            priority_issued=reporting.PriorityTickets(lansia=1),
            applications_submitted=4,
            applications_by_channel=reporting.ChannelTotals(walk_in=3, online=1),
            applications_finished=2,
            applications_finished_within_sla=1,
            applications_with_sla_outcome=1,
            permits_issued=1,
            waiting=reporting.DurationTotals(
                count=7,
                sum_seconds=7 * 420,
                histogram=(3, 3, 1, 0, 0, 0, 0, 0, 0, 0),
                by_hour=(
                    reporting.HourHistogram(hour=8, buckets=(0, 1), counts=(2, 1)),
                    reporting.HourHistogram(hour=9, buckets=(0, 1, 2), counts=(1, 2, 1)),
                ),
            ),
            service=reporting.DurationTotals(
                count=7, sum_seconds=7 * 1500, histogram=(0, 0, 1, 1, 2, 2, 1, 0, 0)
            ),
        ),
    )
    return [
        Example(
            reporting.DailySummaryPublishedV1(
                site=SITE,
                kabkota="3298",
                province="32",
                day=DAY,
                timezone="Asia/Jakarta",
                revision=2,
                final=True,
                generated_at=datetime(2026, 3, 2, 23, 30, tzinfo=WIB),
                visitors=sum(hourly),
                visitors_by_hour=hourly,
                visitors_by_channel=reporting.ChannelTotals(walk_in=250, online=20, mpp_digital=33),
                services=services,
                agencies=(
                    reporting.AgencyDayTotals(
                        agency="disdukcapil",
                        counters_planned=4,
                        counters_opened=4,
                        counter_open_seconds=4 * 7 * 3600,
                    ),
                    reporting.AgencyDayTotals(
                        agency="dpmptsp",
                        counters_planned=2,
                        counters_opened=2,
                        counter_open_seconds=2 * 7 * 3600,
                    ),
                ),
                complaints=(
                    reporting.ComplaintDayTotals(
                        agency="dpmptsp",
                        service_type="dpmptsp.pbg",
                        channel=ComplaintChannel.SP4N_LAPOR,
                        category=ComplaintCategory.SERVICE_TIME,
                        complaint_class=ComplaintClass.COMPLAINT,
                        received=1,
                        anonymous=1,
                        responded=1,
                        responded_within_limit=1,
                        response_working_days_sum=1,
                    ),
                ),
            ),
            subject=reporting.summary_key(SITE, DAY),
            agency="dpmptsp",
            producer="mpp.reporting",
        ),
    ]


_BUILDERS: tuple[Callable[[], list[Example]], ...] = (
    _licensing,
    _identity,
    _queue,
    _notification,
    _reporting,
)


def _examples() -> dict[type[EventPayload], Example]:
    found: dict[type[EventPayload], Example] = {}
    for build in _BUILDERS:
        for example in build():
            found[type(example.payload)] = example
    return found


def example(cls: type[EventPayload]) -> Example:
    """The example of one payload class, with the envelope attributes that go with it."""
    try:
        return _examples()[cls]
    except KeyError:
        raise LookupError(f"no example for {cls.__name__}; add one in mpp.contracts.examples") from None


def example_payload(cls: type[EventPayload]) -> EventPayload:
    """A valid, realistic payload of ``cls``."""
    return example(cls).payload


def example_envelope(cls: type[EventPayload]) -> Envelope:
    """A valid envelope around the example payload of ``cls``, with deterministic ids and times."""
    found = example(cls)
    event_id = uuid.uuid5(NAMESPACE, f"{cls.event_type}.v{cls.event_version}")
    return Envelope.wrap(
        found.payload,
        producer=found.producer,
        agency=found.agency,
        site=SITE,
        subject=found.subject,
        correlation_id=CORRELATION,
        causation_id=str(uuid.uuid5(NAMESPACE, "cause")),
        occurred_at=T0,
        event_id=event_id,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )


def missing_examples() -> list[type[EventPayload]]:
    """Registered payload classes that have no example (should be empty)."""
    known = _examples()
    return [cls for cls in registered_events() if cls not in known]
