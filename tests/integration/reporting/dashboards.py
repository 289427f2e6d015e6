"""Fixtures of the dashboard tests: a catalogue of three MPPs in two provinces and a small set of events
whose figures are computed by hand below."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel
from mpp.contracts.events.licensing import ApplicationSubmittedV1, PermitIssuedV1
from mpp.contracts.events.queue import (
    SkmScores,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketIssuedV1,
    VisitStartedV1,
)
from mpp.contracts.examples import example_payload
from mpp.contracts.masterdata import Catalogue, load_demo_catalogue
from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import projector
from mpp.reporting.domain.sla import catalogue_due, catalogue_sla
from tests.integration.reporting.harness import ReportingApi, running_reporting

SUKAMAJU = "mpp-kota-sukamaju"  # Jawa Barat (32), Kota Sukamaju (3298), WIB
BOGOR = "mpp-kota-bogor"  # Jawa Barat (32), Kota Bogor (3271), WIB
BALIKPAPAN = "mpp-kota-balikpapan"  # Kalimantan Timur (64), Kota Balikpapan (6471), WITA


def catalogue() -> Catalogue:
    """The demo catalogue with two more sites; dpmptsp and polres serve at all three."""
    demo = load_demo_catalogue()
    data = demo.model_dump(mode="json")
    (home,) = data["sites"]
    others = [
        home
        | {
            "code": BOGOR,
            "name": "Mal Pelayanan Publik Kota Bogor",
            "kabkota": "3271",
            "kabkota_name": "Kota Bogor",
        },
        home
        | {
            "code": BALIKPAPAN,
            "name": "Mal Pelayanan Publik Kota Balikpapan",
            "kabkota": "6471",
            "kabkota_name": "Kota Balikpapan",
            "province": "64",
            "province_name": "Kalimantan Timur",
            "timezone": "Asia/Makassar",
        },
    ]
    counters = [
        c | {"site": s["code"], "code": f"{s['code'].removeprefix('mpp-kota-')}-{c['code']}"}
        for s in others
        for c in data["counters"]
        if c["agency"] in ("dpmptsp", "polres")
    ]
    return Catalogue.model_validate(
        data | {"sites": [home, *others], "counters": data["counters"] + counters}
    )


@cache
def _catalogue() -> Catalogue:
    return catalogue()


def site_tz(site: str) -> ZoneInfo:
    """The site's zone; WIB for a site the catalogue does not know, as the service does."""
    return ZoneInfo({s.code: str(s.timezone) for s in _catalogue().sites}.get(site, "Asia/Jakarta"))


async def project(api: ReportingApi, envelopes: Sequence[Envelope]) -> None:
    """One consumed batch through the projector as the service wires it (SLA standards and due days from
    the catalogue)."""
    batch = [ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=i) for i, e in enumerate(envelopes)]
    cat = _catalogue()
    handler = projector(site_tz, catalogue_sla(cat, site_tz), catalogue_due(cat, site_tz))
    async with api.sessions() as session, session.begin():
        await handler(session, batch)


def _wrap(payload: EventPayload, site: str, agency: str, producer: str = "mpp.queue") -> Envelope:
    return Envelope.wrap(payload, producer=producer, agency=agency, site=site, subject="agg-1")


def visit(at: datetime, site: str) -> Envelope:
    return _wrap(VisitStartedV1(visit_id="vis-1", channel=Channel.WALK_IN, started_at=at), site, "dpmptsp")


def ticket(at: datetime, site: str, agency: str, service_type: str, waiting: int) -> list[Envelope]:
    common: dict[str, Any] = {
        "visit_id": "vis-1",
        "ticket_id": "tik-1",
        "ticket_number": "A-001",
        "service_type": service_type,
        "agency": agency,
    }
    issued = TicketIssuedV1(**common, channel=Channel.WALK_IN, issued_at=at)
    called = TicketCalledV1(
        **common,
        counter="loket-01",
        officer_ref="pet-1",
        called_at=at + timedelta(seconds=waiting),
        waiting_seconds=waiting,
    )
    return [_wrap(issued, site, agency), _wrap(called, site, agency)]


def survey(at: datetime, site: str, agency: str, service_type: str, scores: dict[str, int]) -> Envelope:
    payload = example_payload(SurveySubmittedV1)
    assert isinstance(payload, SurveySubmittedV1)
    payload = payload.model_copy(
        update={
            "submitted_at": at,
            "agency": agency,
            "service_type": service_type,
            "scores": SkmScores.model_validate(scores),
        }
    )
    return _wrap(payload, site, agency)


def application(at: datetime, site: str, service_type: str) -> Envelope:
    payload = example_payload(ApplicationSubmittedV1).model_copy(
        update={"submitted_at": at, "service_type": service_type}
    )
    return _wrap(payload, site, service_type.partition(".")[0], "mpp.licensing")


def permit(
    application_id: str,
    site: str,
    service_type: str,
    submitted: datetime,
    issued: datetime,
    within: bool | None,
) -> Envelope:
    payload = example_payload(PermitIssuedV1).model_copy(
        update={
            "application_id": application_id,
            "service_type": service_type,
            "submitted_at": submitted,
            "issued_at": issued,
            "within_sla": within,
        }
    )
    return _wrap(payload, site, service_type.partition(".")[0], "mpp.licensing")


# 09:00 in WIB (Sukamaju, Bogor), 10:00 in WITA (Balikpapan).
MAR_2 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
MAR_3 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
MAR_5 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
GOOD = {f"u{i}": 4 for i in range(1, 10)} | {"u3": 2}
FAIR = {f"u{i}": 3 for i in range(1, 10)} | {"u3": 2}


def events() -> list[Envelope]:
    return [
        *(visit(MAR_2, SUKAMAJU) for _ in range(3)),
        *(visit(APR_1, SUKAMAJU) for _ in range(2)),
        visit(MAR_3, BOGOR),
        *(visit(MAR_2, BALIKPAPAN) for _ in range(4)),
        *ticket(MAR_2, SUKAMAJU, "dpmptsp", "dpmptsp.nib", 300),
        *ticket(MAR_2, SUKAMAJU, "dpmptsp", "dpmptsp.nib", 900),
        *ticket(MAR_2 + timedelta(hours=1), SUKAMAJU, "polres", "polres.skck", 60),
        *ticket(MAR_2, BALIKPAPAN, "dpmptsp", "dpmptsp.nib", 120),
        survey(MAR_2, SUKAMAJU, "dpmptsp", "dpmptsp.nib", GOOD),
        survey(MAR_3, SUKAMAJU, "dpmptsp", "dpmptsp.nib", FAIR),
        survey(MAR_2, BALIKPAPAN, "dpmptsp", "dpmptsp.nib", {f"u{i}": 4 for i in range(1, 10)}),
        application(MAR_2, SUKAMAJU, "dpmptsp.nib"),
        application(MAR_2, SUKAMAJU, "dpmptsp.nib"),
        # NIB in 60 minutes: finished three days after its due day, late.
        permit("lic-2026-000101", SUKAMAJU, "dpmptsp.nib", MAR_2, MAR_5, False),
        # Within 60 minutes by the catalogue (the event does not say).
        permit("lic-2026-000102", SUKAMAJU, "dpmptsp.nib", MAR_2, MAR_2 + timedelta(minutes=30), None),
        # Another site's late application: never on Sukamaju's pages.
        permit("lic-2026-000901", BALIKPAPAN, "dpmptsp.nib", MAR_2, MAR_3, False),
    ]


# Hand-computed figures over 2026-03-01..2026-04-30.
SUKAMAJU_VISITORS = 5
SUKAMAJU_TICKETS = 3
# IKM of Sukamaju: NRR 3.5 for eight unsur, 2 for U3: 25 x (8 x 3.5 + 2) / 9 = 83.33, grade B.
SUKAMAJU_IKM = 83.33
SUKAMAJU_U3_INDEX = 50.0
# Waiting 300, 900 (dpmptsp, 09h) and 60 s (polres, 10h): the median of three is 300 s, reported as the
# upper end of its 10-second bucket, 309 s.
SUKAMAJU_MEDIAN_WAITING = 309
# Balikpapan: all fours, IKM 100.
BALIKPAPAN_IKM = 100.0


@contextlib.asynccontextmanager
async def dashboards(database_url: str, directory: Path) -> AsyncIterator[ReportingApi]:
    path = directory / "catalogue.json"
    path.write_text(_catalogue().model_dump_json())
    async with running_reporting(database_url, catalogue_file=path) as api:
        await project(api, events())
        yield api
