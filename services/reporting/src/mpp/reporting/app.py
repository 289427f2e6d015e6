"""Composition root: ``create_app(settings)`` wires database, projector, routes and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import REPORTING_DAILY_SUMMARIES, consumer_group
from mpp.kit.consumer import BatchHandler
from mpp.kit.kafka import KafkaSecurity
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, retry_startup, service_app
from mpp.reporting.api.exports import router as exports_router
from mpp.reporting.api.http import router
from mpp.reporting.api.messaging import SUMMARY_TYPES, aggregator, projector
from mpp.reporting.api.metrics import router as metrics_router
from mpp.reporting.api.page_auth import LoginRequired, PageForbidden, login_redirect
from mpp.reporting.api.page_auth import router as page_auth_router
from mpp.reporting.api.pages import PageInvalid, PageNotFound, forbidden_page, invalid_page, not_found_page
from mpp.reporting.api.pages import router as pages_router
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.facts import FACT_TYPES
from mpp.reporting.domain.projection import DEFAULT_TZ, PROJECTED_TYPES
from mpp.reporting.domain.sla import catalogue_due, catalogue_sla
from mpp.reporting.figures import Geography
from mpp.reporting.lag import LagWatcher
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.projector_lock import ProjectorLock
from mpp.reporting.persistence.summaries import summary_regions
from mpp.reporting.persistence.tables import consumer_offsets, inbox, outbox
from mpp.reporting.projection_metrics import ProjectionMetrics
from mpp.reporting.publisher import SummaryPublisher

PROJECTOR_GROUP = "mpp.reporting.projector"
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
LOCK_RETRY_S = 1.0

log = logging.getLogger(__name__)


class ReportingService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], runtime: ServiceRuntime, catalogue: Catalogue
    ) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.repository: ModuleType = repository
        self.geography = Geography(catalogue)
        self.national = False
        """National mode: figures also come from the sites' daily summaries."""
        self.publisher: SummaryPublisher | None = None


REGIONS_REFRESH_S = 30.0


async def refresh_regions(svc: ReportingService) -> None:
    async with svc.sessions() as session:
        svc.geography.summary_regions = await summary_regions(session)


async def _learn_regions(svc: ReportingService, stop: asyncio.Event) -> None:
    """National mode: keep the regions of sites known only through their summaries (for filters and
    groupings by province and kab/kota) up to date."""
    while not stop.is_set():
        try:
            await refresh_regions(svc)
        except Exception:
            log.warning("reporting.rollup.regions_unavailable", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=REGIONS_REFRESH_S)


def catalogue_of(settings: ReportingSettings) -> Catalogue:
    return (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )


def zones_of(catalogue: Catalogue) -> Callable[[str], ZoneInfo]:
    """Each site's time zone (the default for a site the catalogue does not know)."""
    zones = {site.code: site.timezone for site in catalogue.sites}

    @cache
    def site_tz(site: str) -> ZoneInfo:
        name = zones.get(site)
        return ZoneInfo(name) if name else DEFAULT_TZ

    return site_tz


async def _fill_pending_rollups(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A rebuild that stopped before its end left the roll-ups to fill: fill them now (the projector's
    first batch would, but no batch may come for a while)."""
    started = time.monotonic()
    filled = await repository.fill_pending_rollups_concurrently(sessions)
    if filled:
        log.info("reporting.rollups.filled", extra={"seconds": round(time.monotonic() - started, 2)})


def projector_factory(
    catalogue: Catalogue, published: frozenset[str] = frozenset(), *, fenced: bool = False
) -> Callable[[ProjectionMetrics | None], BatchHandler]:
    """The projector's batch handler (for the service and for a rebuild), given where to count. Days of
    the ``published`` sites it changes are noted for their daily summaries (so a rebuild republishes);
    ``fenced`` (the service) makes its batches wait while a rebuild runs."""
    site_tz = zones_of(catalogue)
    sla = catalogue_sla(catalogue, site_tz)
    due = catalogue_due(catalogue, site_tz)
    return lambda metrics: projector(
        site_tz, sla, due, published_sites=published, metrics=metrics, fenced=fenced
    )


def create_app(settings: ReportingSettings | None = None) -> FastAPI:  # noqa: PLR0915 - the wiring in one place
    settings = settings or ReportingSettings()
    catalogue = catalogue_of(settings)
    site_tz = zones_of(catalogue)
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    metrics = ServiceMetrics(settings.service_name)
    projection_metrics = ProjectionMetrics(metrics.registry)

    # The projector reads the canonical group's topics; the group id may differ (a parallel rebuild, tests).
    topics = consumer_group(PROJECTOR_GROUP).topics
    published = settings.published_sites if settings.site_mode else frozenset()
    consumers = []
    if settings.site_mode:
        consumers.append(
            ConsumerSpec(
                group_id=settings.consumer_group,
                topics=topics,
                handler=projector_factory(catalogue, published, fenced=True)(projection_metrics),
                event_types=PROJECTED_TYPES | FACT_TYPES,
                offsets_from_database_only=True,
                pipelined=True,
            )
        )
    if settings.national_mode:
        consumers.append(
            ConsumerSpec(
                group_id=settings.rollup_consumer_group,
                topics=(REPORTING_DAILY_SUMMARIES,),
                handler=aggregator(settings.rolled_up_sites),
                event_types=SUMMARY_TYPES,
                offsets_from_database_only=True,
            )
        )
    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        metrics=metrics,
        consumers=consumers,
    )
    app = service_app(runtime, title="MPP Reporting", version="0.1.0")
    svc = app.state.reporting = ReportingService(runtime.sessions, runtime, catalogue)
    svc.national = settings.national_mode
    app.state.projection_metrics = projection_metrics
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
    if published and settings.summary_publish:
        publisher = svc.publisher = SummaryPublisher(
            sessions=runtime.sessions,
            outbox=outbox,
            sites=published,
            catalogue=catalogue,
            site_tz=site_tz,
            close_delay=timedelta(seconds=settings.summary_close_delay_s),
            wakeup=runtime.relay_wakeup,
        )
        background.append(lambda stop: publisher.run(stop, settings.summary_interval_s))
    if settings.national_mode:
        background.append(lambda stop: _learn_regions(svc, stop))
    projecting = settings.consumer_enabled and settings.site_mode
    if projecting and settings.projection_lag_interval_s > 0:
        lag = LagWatcher(
            bootstrap=settings.kafka_bootstrap_servers,
            security=KafkaSecurity.from_settings(settings),
            topics=topics,
            group=settings.consumer_group,
            sessions=runtime.sessions,
            metrics=projection_metrics,
            interval_s=settings.projection_lag_interval_s,
        )
        background.append(lag.run)
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        lock: ProjectorLock | None = None
        if projecting:
            # A rebuild holds the read models alone: the projector starts once it has finished.
            lock = ProjectorLock(runtime.engine, exclusive=False)
            waited = 0.0
            while not await retry_startup("projector lock", lock.acquire):
                if waited % 30 == 0:
                    log.warning("reporting.projector.waiting_for_rebuild", extra={"waited_s": waited})
                await asyncio.sleep(LOCK_RETRY_S)
                waited += LOCK_RETRY_S
        try:
            async with runtime_lifespan(app_) as state:
                if lock is not None:
                    await _fill_pending_rollups(runtime.sessions)
                stop = asyncio.Event()
                tasks = [asyncio.create_task(run(stop)) for run in background]
                if lock is not None:
                    tasks.append(asyncio.create_task(lock.keep(stop, settings.projector_lock_check_s)))
                try:
                    yield state
                finally:
                    stop.set()
                    await asyncio.gather(*tasks)
        finally:
            if lock is not None:
                await lock.release()

    app.router.lifespan_context = lifespan
    app.include_router(router)
    app.include_router(metrics_router)
    app.include_router(page_auth_router)
    app.include_router(pages_router)
    app.include_router(exports_router)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.add_exception_handler(PageForbidden, forbidden_page)
    app.add_exception_handler(PageNotFound, not_found_page)
    app.add_exception_handler(PageInvalid, invalid_page)
    return app
