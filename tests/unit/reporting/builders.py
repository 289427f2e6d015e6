"""A seeded generator of realistic reporting input: a catalogue of three MPPs in two provinces and two
time zones, and a mix of visits, tickets, applications, documents, surveys, complaints and counters
over several days. Tests compute expected figures directly from the generated payloads."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import (
    Channel,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    PriorityGroup,
)
from mpp.contracts.events.identity import DocumentIssuedV1, DocumentKind, DocumentMedium
from mpp.contracts.events.licensing import ApplicationRejectedV1, ApplicationSubmittedV1, PermitIssuedV1
from mpp.contracts.events.queue import (
    CancelledBy,
    ComplaintOutcome,
    ComplaintReceivedV1,
    ComplaintResolvedV1,
    ComplaintRespondedV1,
    CounterClosedV1,
    CounterCloseReason,
    CounterOpenedV1,
    ServiceCompletedV1,
    SkmScores,
    SurveyChannel,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketCancelledV1,
    TicketIssuedV1,
    TicketNoShowV1,
    VisitStartedV1,
)
from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue

CITIZEN = "cit_0123456789abcdef"
SERVICES = (
    "disdukcapil.kk",
    "disdukcapil.ktp-el-cetak",
    "dpmptsp.nib",
    "dpmptsp.pbg",
    "polres.skck",
    "samsat.pkb-tahunan",
)


@dataclass(frozen=True)
class SiteInfo:
    code: str
    tz: ZoneInfo
    province: str
    kabkota: str


def sites_for(run: str) -> tuple[SiteInfo, ...]:
    return (
        SiteInfo(f"mpp-uji-{run}-a", ZoneInfo("Asia/Jakarta"), "32", "3298"),
        SiteInfo(f"mpp-uji-{run}-b", ZoneInfo("Asia/Jakarta"), "32", "3299"),
        SiteInfo(f"mpp-uji-{run}-c", ZoneInfo("Asia/Makassar"), "64", "6471"),
    )


def catalogue_for(sites: tuple[SiteInfo, ...]) -> Catalogue:
    """The demo catalogue with its one site replaced by ``sites``, each with the demo's counters."""
    demo = json.loads(load_demo_catalogue().model_dump_json())
    template = demo["sites"][0]
    demo["sites"] = [
        {
            **template,
            "code": s.code,
            "name": f"MPP Uji {s.code[-1].upper()}",
            "province": s.province,
            "province_name": "Provinsi Uji",
            "kabkota": s.kabkota,
            "kabkota_name": "Kota Uji",
            "timezone": s.tz.key,
        }
        for s in sites
    ]
    counters = demo["counters"]
    demo["counters"] = [
        {**c, "code": f"{c['code']}-{s.code[-1]}", "site": s.code} for s in sites for c in counters
    ]
    return load_catalogue(json.dumps(demo))


def counters_of(catalogue: Catalogue, site: str, agency: str) -> list[str]:
    return [c.code for c in catalogue.counters if c.site == site and c.agency == agency]


@dataclass
class Generated:
    envelopes: list[Envelope] = field(default_factory=list)

    def payloads(self, cls: type[EventPayload]) -> list[tuple[Envelope, Any]]:
        return [(e, e.payload) for e in self.envelopes if isinstance(e.payload, cls)]


def _wrap(payload: EventPayload, site: str, agency: str, subject: str, producer: str) -> Envelope:
    return Envelope.wrap(payload, producer=producer, agency=agency, site=site, subject=subject)


def generate(
    seed: int, sites: tuple[SiteInfo, ...], days: list[date], visits_per_day: int, catalogue: Catalogue
) -> Generated:
    rng = random.Random(seed)
    out = Generated()
    add = out.envelopes.append

    def local(site: SiteInfo, day: date, hour: int, minute: int, second: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=site.tz).astimezone(UTC)

    def uid(prefix: str) -> str:
        return f"{prefix}-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"

    for site in sites:
        for day in days:
            for agency in ("disdukcapil", "dpmptsp", "polres"):
                for counter in counters_of(catalogue, site.code, agency)[:2]:
                    opened = local(site, day, 8, rng.randint(0, 20))
                    planned = rng.random() < 0.8
                    cid = uid("ctr")
                    add(
                        _wrap(
                            CounterOpenedV1(
                                counter=counter,
                                agency=agency,
                                service_types=(f"{agency}.x",),
                                officer_ref="pet-1",
                                planned=planned,
                                opened_at=opened,
                            ),
                            site.code,
                            agency,
                            cid,
                            "mpp.queue",
                        )
                    )
                    closed = opened + timedelta(seconds=rng.randint(3600, 8 * 3600))
                    add(
                        _wrap(
                            CounterClosedV1(
                                counter=counter,
                                agency=agency,
                                officer_ref="pet-1",
                                reason=CounterCloseReason.END_OF_DAY,
                                opened_at=opened,
                                closed_at=closed,
                                tickets_served=0,
                            ),
                            site.code,
                            agency,
                            cid,
                            "mpp.queue",
                        )
                    )
            for _ in range(visits_per_day):
                visit = uid("vis")
                # Some visits start just before midnight: they belong to that local day.
                hour = 23 if rng.random() < 0.03 else rng.randint(7, 15)
                started = local(site, day, hour, rng.randint(0, 58), rng.randint(0, 59))
                channel = rng.choice([Channel.WALK_IN, Channel.WALK_IN, Channel.ONLINE, Channel.MPP_DIGITAL])
                add(
                    _wrap(
                        VisitStartedV1(visit_id=visit, channel=channel, started_at=started),
                        site.code,
                        "dpmptsp",
                        visit,
                        "mpp.queue",
                    )
                )
                for n in range(rng.choice([1, 1, 2])):
                    service = rng.choice(SERVICES)
                    agency = service.partition(".")[0]
                    ticket = uid("tik")
                    issued = started + timedelta(seconds=30 + n * 5)
                    priority = rng.choice([PriorityGroup.NONE] * 6 + list(PriorityGroup)[:5])
                    common = {
                        "visit_id": visit,
                        "ticket_id": ticket,
                        "service_type": service,
                        "agency": agency,
                    }
                    add(
                        _wrap(
                            TicketIssuedV1(
                                **common,
                                ticket_number="A-001",
                                priority_group=priority,
                                channel=channel,
                                issued_at=issued,
                            ),
                            site.code,
                            agency,
                            visit,
                            "mpp.queue",
                        )
                    )
                    waiting = int(rng.expovariate(1 / 900))
                    called = issued + timedelta(seconds=waiting)
                    add(
                        _wrap(
                            TicketCalledV1(
                                **common,
                                ticket_number="A-001",
                                counter="loket-01",
                                officer_ref="pet-1",
                                call_count=1,
                                called_at=called,
                                waiting_seconds=waiting,
                            ),
                            site.code,
                            agency,
                            visit,
                            "mpp.queue",
                        )
                    )
                    fate = rng.random()
                    if fate < 0.05:
                        add(
                            _wrap(
                                TicketCalledV1(
                                    **common,
                                    ticket_number="A-001",
                                    counter="loket-01",
                                    officer_ref="pet-1",
                                    call_count=2,
                                    called_at=called + timedelta(seconds=120),
                                    waiting_seconds=waiting + 120,
                                ),
                                site.code,
                                agency,
                                visit,
                                "mpp.queue",
                            )
                        )
                        add(
                            _wrap(
                                TicketNoShowV1(
                                    **common,
                                    counter="loket-01",
                                    call_count=2,
                                    waiting_seconds=waiting,
                                    marked_at=called + timedelta(seconds=300),
                                ),
                                site.code,
                                agency,
                                visit,
                                "mpp.queue",
                            )
                        )
                    elif fate < 0.08:
                        add(
                            _wrap(
                                TicketCancelledV1(
                                    **common,
                                    cancelled_by=CancelledBy.CITIZEN,
                                    reason_code="citizen_left",
                                    cancelled_at=called,
                                    waiting_seconds=waiting,
                                ),
                                site.code,
                                agency,
                                visit,
                                "mpp.queue",
                            )
                        )
                    else:
                        walking = rng.randint(5, 90)
                        service_seconds = rng.randint(60, 1800)
                        completed = called + timedelta(seconds=walking + service_seconds)
                        add(
                            _wrap(
                                ServiceCompletedV1(
                                    **common,
                                    ticket_number="A-001",
                                    counter="loket-01",
                                    officer_ref="pet-1",
                                    priority_group=priority,
                                    channel=channel,
                                    issued_at=issued,
                                    completed_at=completed,
                                    waiting_seconds=waiting,
                                    walking_seconds=walking,
                                    service_seconds=service_seconds,
                                    total_seconds=waiting + walking + service_seconds,
                                ),
                                site.code,
                                agency,
                                visit,
                                "mpp.queue",
                            )
                        )
                        if rng.random() < 0.3:
                            scores = {
                                f"u{i}": rng.choice([2, 3, 3, 4, 4])
                                for i in range(1, 10)
                                if rng.random() < 0.95
                            }
                            scores.setdefault("u1", 3)
                            add(
                                _wrap(
                                    SurveySubmittedV1(
                                        survey_id=uid("skm"),
                                        service_type=service,
                                        agency=agency,
                                        scores=SkmScores(**scores),
                                        channel=SurveyChannel.KIOSK,
                                        submitted_at=completed + timedelta(seconds=60),
                                    ),
                                    site.code,
                                    agency,
                                    uid("skm"),
                                    "mpp.queue",
                                )
                            )
                    if agency in ("dpmptsp", "disdukcapil") and rng.random() < 0.4:
                        app = uid("app")
                        submitted = issued + timedelta(seconds=waiting + 300)
                        add(
                            _wrap(
                                ApplicationSubmittedV1(
                                    application_id=app,
                                    service_type=service,
                                    applicant_ref=CITIZEN,
                                    channel=channel,
                                    tracking_code="TRK-1",
                                    submitted_at=submitted,
                                    documents=2,
                                ),
                                site.code,
                                agency,
                                app,
                                "mpp.licensing",
                            )
                        )
                        done = submitted + timedelta(days=rng.randint(0, 3), minutes=rng.randint(1, 90))
                        outcome = rng.random()
                        if agency == "dpmptsp" and outcome < 0.8:
                            within = rng.choice([True, True, False, None])
                            add(
                                _wrap(
                                    PermitIssuedV1(
                                        application_id=app,
                                        permit_number="P-1",
                                        service_type=service,
                                        applicant_ref=CITIZEN,
                                        issued_at=done,
                                        submitted_at=submitted,
                                        within_sla=within,
                                    ),
                                    site.code,
                                    agency,
                                    app,
                                    "mpp.licensing",
                                )
                            )
                        elif agency == "dpmptsp":
                            add(
                                _wrap(
                                    ApplicationRejectedV1(
                                        application_id=app,
                                        service_type=service,
                                        applicant_ref=CITIZEN,
                                        officer_ref="pet-1",
                                        reason_code="incomplete",
                                        reason="Berkas kurang",
                                        rejected_at=done,
                                    ),
                                    site.code,
                                    agency,
                                    app,
                                    "mpp.licensing",
                                )
                            )
                        else:
                            add(
                                _wrap(
                                    DocumentIssuedV1(
                                        application_id=app,
                                        service_type=service,
                                        document_kind=DocumentKind.KK,
                                        applicant_ref=CITIZEN,
                                        document_ref="doc-1",
                                        medium=DocumentMedium.PRINTED,
                                        issued_at=done,
                                        submitted_at=submitted,
                                        working_days_elapsed=rng.randint(0, 3),
                                        within_sla=rng.choice([True, False]),
                                    ),
                                    site.code,
                                    agency,
                                    app,
                                    "mpp.identity",
                                )
                            )
            for _ in range(rng.randint(1, 4)):
                complaint = uid("adu")
                disposed: str | None = rng.choice(["dpmptsp", "polres", None])
                received = local(site, day, rng.randint(8, 15), rng.randint(0, 59))
                common_c: dict[str, Any] = {
                    "complaint_id": complaint,
                    "channel": rng.choice(list(ComplaintChannel)),
                    "category": rng.choice(list(ComplaintCategory)),
                    "complaint_class": ComplaintClass.COMPLAINT,
                }
                add(
                    _wrap(
                        ComplaintReceivedV1(
                            **common_c,
                            resolution_limit_days=5,
                            anonymous=rng.random() < 0.5,
                            agency=disposed,
                            received_at=received,
                        ),
                        site.code,
                        disposed or "dpmptsp",
                        complaint,
                        "mpp.queue",
                    )
                )
                if rng.random() < 0.7:
                    days_taken = rng.randint(0, 4)
                    add(
                        _wrap(
                            ComplaintRespondedV1(
                                **common_c,
                                agency=disposed,
                                officer_ref="pet-1",
                                received_at=received,
                                responded_at=received + timedelta(days=days_taken),
                                working_days_elapsed=days_taken,
                                within_limit=days_taken <= 3,
                            ),
                            site.code,
                            disposed or "dpmptsp",
                            complaint,
                            "mpp.queue",
                        )
                    )
                    if rng.random() < 0.6:
                        add(
                            _wrap(
                                ComplaintResolvedV1(
                                    **common_c,
                                    anonymous=False,
                                    agency=disposed,
                                    outcome=ComplaintOutcome.UPHELD,
                                    received_at=received,
                                    resolved_at=received + timedelta(days=days_taken + 1),
                                    working_days_elapsed=days_taken + 1,
                                    within_limit=days_taken + 1 <= 5,
                                ),
                                site.code,
                                disposed or "dpmptsp",
                                complaint,
                                "mpp.queue",
                            )
                        )
    rng.shuffle(out.envelopes)  # out of order: late events still land on their own day
    return out
