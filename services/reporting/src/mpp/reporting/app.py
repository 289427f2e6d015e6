"""Composition root: ``create_app(settings)`` wires database, projector, routes and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import REPORTING_DAILY_SUMMARIES, consumer_group
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, service_app
from mpp.reporting.api.http import router
from mpp.reporting.api.messaging import SUMMARY_TYPES, aggregator, projector
from mpp.reporting.api.metrics import router as metrics_router
from mpp.reporting.api.page_auth import LoginRequired, login_redirect
from mpp.reporting.api.page_auth import router as page_auth_router
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.facts import FACT_TYPES
from mpp.reporting.domain.projection import DEFAULT_TZ, PROJECTED_TYPES
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.figures import Geography
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.tables import consumer_offsets, inbox, outbox
from mpp.reporting.publisher import SummaryPublisher

PROJECTOR_GROUP = "mpp.reporting.projector"
ROLLUP_GROUP = "mpp.reporting.rollup"
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


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


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    catalogue = (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )
    zones = {site.code: site.timezone for site in catalogue.sites}

    @cache
    def site_tz(site: str) -> ZoneInfo:
        name = zones.get(site)
        return ZoneInfo(name) if name else DEFAULT_TZ

    # The projector reads the canonical group's topics; the group id may differ (a parallel rebuild, tests).
    topics = consumer_group(PROJECTOR_GROUP).topics
    published = settings.published_sites if settings.site_mode else frozenset()
    consumers = []
    if settings.site_mode:
        consumers.append(
            ConsumerSpec(
                group_id=settings.consumer_group,
                topics=topics,
                handler=projector(site_tz, catalogue_sla(catalogue, site_tz), published),
                event_types=PROJECTED_TYPES | FACT_TYPES,
                offsets_from_database_only=True,
            )
        )
    if settings.national_mode:
        consumers.append(
            ConsumerSpec(
                group_id=settings.rollup_consumer_group,
                topics=(REPORTING_DAILY_SUMMARIES,),
                handler=aggregator(),
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
        consumers=consumers,
    )
    app = service_app(runtime, title="MPP Reporting", version="0.1.0")
    svc = app.state.reporting = ReportingService(runtime.sessions, runtime, catalogue)
    svc.national = settings.national_mode
    if published:
        svc.publisher = SummaryPublisher(
            sessions=runtime.sessions,
            outbox=outbox,
            sites=published,
            catalogue=catalogue,
            site_tz=site_tz,
            close_delay=timedelta(seconds=settings.summary_close_delay_s),
            wakeup=runtime.relay_wakeup,
        )
        runtime_lifespan = app.router.lifespan_context
        publisher, interval = svc.publisher, settings.summary_interval_s

        @contextlib.asynccontextmanager
        async def lifespan(a: FastAPI) -> AsyncIterator[None]:
            async with runtime_lifespan(a):
                stop = asyncio.Event()
                task = asyncio.create_task(publisher.run(stop, interval), name="daily summaries")
                try:
                    yield
                finally:
                    stop.set()
                    await task

        app.router.lifespan_context = lifespan
    app.include_router(router)
    app.include_router(metrics_router)
    app.include_router(page_auth_router)
    app.add_exception_handler(LoginRequired, login_redirect)
    return app
