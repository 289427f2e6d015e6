"""Composition root: ``create_app(settings)`` wires database, Kafka runtime, routes and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.contracts.workflow import Workflow
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, service_app
from mpp.licensing.api.http import public, router
from mpp.licensing.api.messaging import VERIFICATION_RESULT_TYPES, verification_results
from mpp.licensing.config import LicensingSettings
from mpp.licensing.handlers import Ports, flag_sla_breaches
from mpp.licensing.persistence.tables import consumer_offsets, inbox, outbox
from mpp.licensing.persistence.uow import LicensingUnitOfWork

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
VERIFICATION_RESULTS_GROUP = "mpp.licensing.verification-results"
log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class LicensingServiceInfo:
    code: str
    agency: str
    short_code: str
    workflow: Workflow | None


class CatalogueAdapter:
    """Looks up licensing service types in the site's catalogue; other service types are unknown here."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._clocks: dict[str, WorkingClock] = {}
        self._by_code: dict[str, LicensingServiceInfo] = {}
        for st in catalogue.service_types:
            if not st.licensing:
                continue
            self._by_code[st.code] = LicensingServiceInfo(
                code=st.code,
                agency=st.agency,
                short_code=st.code.rsplit(".", 1)[-1].replace("-", "")[:12],
                workflow=catalogue.service_workflow(st.code),
            )

    def licensing_service(self, code: str) -> LicensingServiceInfo | None:
        return self._by_code.get(code)

    def rules(self, workflow: str, site: str) -> tuple[Workflow, WorkingClock]:
        clock = self._clocks.get(site)
        if clock is None:
            known = {s.code for s in self._catalogue.sites}
            # A site the catalogue does not list (a test or demo site created on the fly) works on the
            # calendar of the catalogue's first site: every MPP follows the national holidays, and an
            # unknown site has no local ones we could know about.
            clock = WorkingClock.for_site(
                self._catalogue, site if site in known else self._catalogue.sites[0].code
            )
            self._clocks[site] = clock
        return self._catalogue.workflow(workflow), clock


class LicensingService:
    """What the HTTP edge needs: a unit-of-work factory and the ports."""

    def __init__(self, runtime: ServiceRuntime, ports: Ports) -> None:
        self.runtime = runtime
        self.ports = ports

    def uow(self) -> LicensingUnitOfWork:
        return LicensingUnitOfWork(
            self.runtime.sessions, self.ports.catalogue.rules, self.runtime.relay_wakeup
        )

    async def flag_sla_breaches(self) -> int:
        """One pass of the SLA watch: breaches are marked and their events written in one transaction."""
        async with self.uow() as uow:
            flagged = await flag_sla_breaches(uow, self.ports.clock)
            await uow.commit()
        if flagged:
            log.info("licensing.application.sla_breached", extra={"count": flagged})
        return flagged

    async def watch_sla(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                await self.flag_sla_breaches()
            except Exception as exc:  # a database outage must not end the watch; the next pass retries
                log.warning("licensing.sla_watch.failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)


def create_app(settings: LicensingSettings | None = None) -> FastAPI:
    settings = settings or LicensingSettings()
    catalogue = (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )
    adapter = CatalogueAdapter(catalogue)
    ports = Ports(clock=SystemClock(), catalogue=adapter)
    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        consumers=[
            ConsumerSpec(
                group_id=settings.verification_results_group,
                topics=consumer_group(VERIFICATION_RESULTS_GROUP).topics,
                handler=verification_results(adapter.rules),
                event_types=VERIFICATION_RESULT_TYPES,
            )
        ],
    )
    app = service_app(runtime, title="MPP Licensing", version="0.1.0")
    service = LicensingService(runtime, ports)
    app.state.licensing = service
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with runtime_lifespan(app_) as state:
            stop = asyncio.Event()
            watch = (
                asyncio.create_task(service.watch_sla(stop, settings.sla_watch_interval_s), name="sla-watch")
                if settings.sla_watch_enabled
                else None
            )
            try:
                yield state
            finally:
                stop.set()
                if watch is not None:
                    await watch

    app.router.lifespan_context = lifespan
    app.include_router(router)
    app.include_router(public)
    return app
