"""Composition root: ``create_app(settings)`` wires database, projector, routes and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.kit.consumer import BatchHandler
from mpp.kit.kafka import KafkaSecurity
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, retry_startup, service_app
from mpp.reporting.api.http import router
from mpp.reporting.api.messaging import projector
from mpp.reporting.api.metrics import router as metrics_router
from mpp.reporting.api.page_auth import LoginRequired, login_redirect
from mpp.reporting.api.page_auth import router as page_auth_router
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.facts import FACT_TYPES
from mpp.reporting.domain.projection import DEFAULT_TZ, PROJECTED_TYPES
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.figures import Geography
from mpp.reporting.lag import LagWatcher
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.projector_lock import ProjectorLock
from mpp.reporting.persistence.tables import consumer_offsets, inbox, outbox
from mpp.reporting.projection_metrics import ProjectionMetrics

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


def catalogue_of(settings: ReportingSettings) -> Catalogue:
    return (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )


def projector_factory(catalogue: Catalogue) -> Callable[[ProjectionMetrics | None], BatchHandler]:
    """The projector's batch handler (for the service and for a rebuild), given where to count."""
    zones = {site.code: site.timezone for site in catalogue.sites}

    @cache
    def site_tz(site: str) -> ZoneInfo:
        name = zones.get(site)
        return ZoneInfo(name) if name else DEFAULT_TZ

    sla = catalogue_sla(catalogue, site_tz)
    return lambda metrics: projector(site_tz, sla, metrics)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    catalogue = catalogue_of(settings)
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    metrics = ServiceMetrics(settings.service_name)
    projection_metrics = ProjectionMetrics(metrics.registry)

    # The projector reads the canonical group's topics; the group id may differ (a parallel rebuild, tests).
    topics = consumer_group(PROJECTOR_GROUP).topics
    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        metrics=metrics,
        consumers=[
            ConsumerSpec(
                group_id=settings.consumer_group,
                topics=topics,
                handler=projector_factory(catalogue)(projection_metrics),
                event_types=PROJECTED_TYPES | FACT_TYPES,
                offsets_from_database_only=True,
            )
        ],
    )
    app = service_app(runtime, title="MPP Reporting", version="0.1.0")
    app.state.reporting = ReportingService(runtime.sessions, runtime, catalogue)
    app.state.projection_metrics = projection_metrics
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        lock: ProjectorLock | None = None
        if settings.consumer_enabled:
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
                stop = asyncio.Event()
                watcher: asyncio.Task[None] | None = None
                if settings.consumer_enabled and settings.projection_lag_interval_s > 0:
                    lag = LagWatcher(
                        bootstrap=settings.kafka_bootstrap_servers,
                        security=KafkaSecurity.from_settings(settings),
                        topics=topics,
                        group=settings.consumer_group,
                        sessions=runtime.sessions,
                        metrics=projection_metrics,
                        interval_s=settings.projection_lag_interval_s,
                    )
                    watcher = asyncio.create_task(lag.run(stop), name="projection-lag")
                try:
                    yield state
                finally:
                    stop.set()
                    if watcher is not None:
                        await watcher
        finally:
            if lock is not None:
                await lock.release()

    app.router.lifespan_context = lifespan
    app.include_router(router)
    app.include_router(metrics_router)
    app.include_router(page_auth_router)
    app.add_exception_handler(LoginRequired, login_redirect)
    return app
