"""Composition root: ``create_app(settings)`` wires database, keys, the verification consumer, routes and
telemetry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from prometheus_client import Counter

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.events.identity import CitizenVerificationRequestedV1
from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.contracts.workflow import Workflow
from mpp.identity.api.documents import public as documents_public
from mpp.identity.api.documents import router as documents_router
from mpp.identity.api.http import router
from mpp.identity.api.messaging import verifier
from mpp.identity.config import IdentitySettings
from mpp.identity.domain.documents import SERVICE_KINDS
from mpp.identity.handlers import Ports
from mpp.identity.persistence.protection import CitizenKeys, decode_data_key
from mpp.identity.persistence.tables import consumer_offsets, inbox, outbox
from mpp.identity.persistence.uow import IdentityUnitOfWork
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, service_app

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
VERIFIER_GROUP = "mpp.identity.verifier"
DEFAULT_TZ = ZoneInfo("Asia/Jakarta")

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class CatalogueCalendar:
    """Local dates by the site's time zone from the catalogue (WIB for sites it does not list)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._zones = {site.code: site.timezone.value for site in catalogue.sites}
        self._zone = cache(self._lookup)

    def _lookup(self, site: str) -> ZoneInfo:
        name = self._zones.get(site)
        return ZoneInfo(name) if name else DEFAULT_TZ

    def today(self, site: str, at: datetime) -> date:
        return at.astimezone(self._zone(site)).date()


@dataclass(frozen=True)
class DocumentServiceInfo:
    code: str
    agency: str
    workflow: Workflow | None
    requirements: frozenset[str]
    mandatory_requirements: frozenset[str]


class CatalogueDocuments:
    """The civil registry service types of the catalogue that take document applications, and the
    workflows and working clocks their applications follow."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._clocks: dict[str, WorkingClock] = {}
        self._by_code = {
            st.code: DocumentServiceInfo(
                code=st.code,
                agency=st.agency,
                workflow=catalogue.service_workflow(st.code),
                requirements=frozenset(r.code for r in st.requirements),
                mandatory_requirements=frozenset(r.code for r in st.requirements if not r.optional),
            )
            for st in catalogue.service_types
            if st.code in SERVICE_KINDS
        }
        self._kabkota = {site.code: site.kabkota for site in catalogue.sites}

    def document_service(self, code: str) -> DocumentServiceInfo | None:
        return self._by_code.get(code)

    def _known_site(self, site: str) -> str:
        # A site the catalogue does not list (created on the fly in tests or demos) works like the
        # catalogue's first site: the national holidays apply everywhere.
        return site if site in self._kabkota else self._catalogue.sites[0].code

    def rules(self, workflow: str, site: str) -> tuple[Workflow, WorkingClock]:
        clock = self._clocks.get(site)
        if clock is None:
            clock = WorkingClock.for_site(self._catalogue, self._known_site(site))
            self._clocks[site] = clock
        return self._catalogue.workflow(workflow), clock

    def site_kabkota(self, site: str) -> str:
        return self._kabkota[self._known_site(site)]


class CatalogueAgencies:
    """The participating agencies of the catalogue may ask for verifications; nobody else."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._codes = frozenset(agency.code for agency in catalogue.agencies)

    def knows(self, agency: str) -> bool:
        return agency in self._codes


def citizen_keys(settings: IdentitySettings) -> CitizenKeys:
    return CitizenKeys(
        data_key=decode_data_key(settings.data_key.get_secret_value()),
        lookup_key=settings.lookup_key.get_secret_value().encode(),
        citizen_ref_key=settings.citizen_ref_key.get_secret_value().encode(),
    )


def catalogue_of(settings: IdentitySettings) -> Catalogue:
    if settings.catalogue_file:
        return load_catalogue(settings.catalogue_file.read_text())
    return load_demo_catalogue()


class IdentityService:
    """What the HTTP edge needs: a unit-of-work factory, the ports, the keys and its own metrics."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        ports: Ports,
        keys: CitizenKeys,
        registered: Counter,
        documents: CatalogueDocuments,
    ) -> None:
        self.runtime = runtime
        self.ports = ports
        self.keys = keys
        self.registered = registered
        self.documents = documents

    def uow(self) -> IdentityUnitOfWork:
        return IdentityUnitOfWork(
            self.runtime.sessions, self.keys, self.runtime.relay_wakeup, rules=self.documents.rules
        )


def create_app(settings: IdentitySettings | None = None) -> FastAPI:
    # The verifier's own counters live in the service's metrics registry, which must exist before the
    # consumer spec that uses them: the registry is made here and handed to build_runtime.
    settings = settings or IdentitySettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    development = settings.development_keys()
    if development:
        log.warning("identity.keys.development_defaults", extra={"keys": development})
    metrics = ServiceMetrics(settings.service_name)
    answers = Counter(
        "mpp_identity_verifications_total",
        "Verification requests answered, by outcome (verified or the failure reason).",
        ["outcome"],
        registry=metrics.registry,
    )
    duplicates = Counter(
        "mpp_identity_verification_duplicates_total",
        "Verification requests skipped because their request id had already been answered.",
        registry=metrics.registry,
    )
    registered = Counter(
        "mpp_identity_citizens_registered_total",
        "Citizens registered over HTTP.",
        registry=metrics.registry,
    )
    keys = citizen_keys(settings)
    catalogue = catalogue_of(settings)
    documents = CatalogueDocuments(catalogue)
    ports = Ports(
        clock=SystemClock(),
        calendar=CatalogueCalendar(catalogue),
        pseudonymiser=keys,
        agencies=CatalogueAgencies(catalogue),
        documents=documents,
        registry_available=not settings.registry_unavailable,
    )
    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        metrics=metrics,
        consumers=[
            ConsumerSpec(
                group_id=settings.verifier_group,
                topics=consumer_group(VERIFIER_GROUP).topics,
                handler=verifier(keys=keys, ports=ports, answers=answers, duplicates=duplicates),
                event_types=frozenset({CitizenVerificationRequestedV1.event_type}),
            )
        ],
    )
    app = service_app(runtime, title="MPP Identity", version="0.2.0")
    app.state.identity = IdentityService(runtime, ports, keys, registered, documents)
    app.include_router(router)
    # The public tracking route first: its path would otherwise also match /{id}/document.
    app.include_router(documents_public)
    app.include_router(documents_router)
    return app
