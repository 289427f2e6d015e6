"""Composition root: ``create_app(settings)`` wires database, Kafka runtime, routes and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter

from mpp.contracts.calendar import WorkingClock
from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.contracts.workflow import Workflow
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, service_app
from mpp.licensing.api.http import public, router
from mpp.licensing.api.messaging import VERIFICATION_RESULT_TYPES, verification_results
from mpp.licensing.config import DEV_DATA_KEY, LicensingSettings
from mpp.licensing.domain.verification import RetryPolicy
from mpp.licensing.handlers import Ports, SweepResult, ask_again_unanswered, flag_sla_breaches
from mpp.licensing.persistence.protection import RequestSealer, decode_key
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

    def __init__(
        self,
        runtime: ServiceRuntime,
        ports: Ports,
        swept: Counter | None = None,
        ignored: Counter | None = None,
    ) -> None:
        self.runtime = runtime
        self.ports = ports
        self._swept = swept
        self.ignored_answers = ignored
        """Counter of verification answers that changed nothing, by reason."""

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
        await _every(stop, interval_s, self.flag_sla_breaches, "licensing.sla_watch.failed")

    async def sweep_verifications(self, batch: int = 200) -> SweepResult:
        """One pass of the verification sweep: due requests published again, exhausted ones handed to
        officers, in one transaction per batch until nothing is due."""
        total = SweepResult(0, 0)
        while True:
            async with self.uow() as uow:
                done = await ask_again_unanswered(uow, self.ports, batch=batch)
                await uow.commit()
            total = SweepResult(total.asked_again + done.asked_again, total.stalled + done.stalled)
            if self._swept is not None:
                self._swept.labels(outcome="asked_again").inc(done.asked_again)
                self._swept.labels(outcome="stalled").inc(done.stalled)
            if done.asked_again + done.stalled == 0:
                break
        if total.asked_again or total.stalled:
            log.info(
                "licensing.verification.swept",
                extra={"asked_again": total.asked_again, "stalled": total.stalled},
            )
        return total

    async def watch_verifications(self, stop: asyncio.Event, interval_s: float) -> None:
        await _every(stop, interval_s, self.sweep_verifications, "licensing.verification_sweep.failed")


async def _every(stop: asyncio.Event, interval_s: float, job: Any, failure: str) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:  # a database outage must not end the watch; the next pass retries
            log.warning(failure, extra={"error": type(exc).__name__})
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
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    if settings.data_key.get_secret_value() == DEV_DATA_KEY:
        log.warning("licensing.keys.development_default", extra={"keys": ["data_key"]})
    metrics = ServiceMetrics(settings.service_name)
    ignored = Counter(
        "mpp_licensing_verification_answers_ignored_total",
        "Verification answers that changed nothing, by reason (foreign_producer, not_ours, mismatched, "
        "stale, settled).",
        ["reason"],
        registry=metrics.registry,
    )
    swept = Counter(
        "mpp_licensing_verification_sweep_total",
        "Applications the verification sweep asked identity about again, or handed to an officer.",
        ["outcome"],
        registry=metrics.registry,
    )
    ports = Ports(
        clock=SystemClock(),
        catalogue=adapter,
        vault=RequestSealer(decode_key(settings.data_key.get_secret_value())),
        policy=RetryPolicy(
            max_attempts=settings.verification_max_attempts,
            answer_timeout=timedelta(seconds=settings.verification_timeout_s),
            base_delay=timedelta(seconds=settings.verification_retry_base_s),
            max_delay=timedelta(seconds=settings.verification_retry_max_s),
        ),
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
                group_id=settings.verification_results_group,
                topics=consumer_group(VERIFICATION_RESULTS_GROUP).topics,
                handler=verification_results(ports, ignored),
                event_types=VERIFICATION_RESULT_TYPES,
            )
        ],
    )
    app = service_app(runtime, title="MPP Licensing", version="0.1.0")
    service = LicensingService(runtime, ports, swept, ignored)
    app.state.licensing = service
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with runtime_lifespan(app_) as state:
            stop = asyncio.Event()
            watches = []
            if settings.sla_watch_enabled:
                watches.append(
                    asyncio.create_task(
                        service.watch_sla(stop, settings.sla_watch_interval_s), name="sla-watch"
                    )
                )
            if settings.verification_sweep_enabled:
                watches.append(
                    asyncio.create_task(
                        service.watch_verifications(stop, settings.verification_sweep_interval_s),
                        name="verification-sweep",
                    )
                )
            try:
                yield state
            finally:
                stop.set()
                for watch in watches:
                    await watch

    app.router.lifespan_context = lifespan
    app.include_router(router)
    app.include_router(public)
    return app
