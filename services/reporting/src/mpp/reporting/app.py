"""Composition root: ``create_app(settings)`` wires database, projector, routes and telemetry."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.masterdata import load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.kit.db import create_engine, session_factory
from mpp.kit.http import create_http_app
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime
from mpp.reporting.api.http import router
from mpp.reporting.api.messaging import projector
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.projection import DEFAULT_TZ, PROJECTED_TYPES
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.tables import consumer_offsets, inbox, outbox

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


class ReportingService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], runtime: ServiceRuntime) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.repository: ModuleType = repository


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    metrics = ServiceMetrics(settings.service_name)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    sessions = session_factory(engine)
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

    group = consumer_group(settings.consumer_group)
    runtime = ServiceRuntime(
        settings=settings,
        metrics=metrics,
        engine=engine,
        sessions=sessions,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        consumers=[
            ConsumerSpec(
                group_id=group.group_id,
                topics=group.topics,
                handler=projector(site_tz),
                event_types=PROJECTED_TYPES,
                offsets_from_database_only=True,
            )
        ],
    )
    app = create_http_app(
        settings=settings,
        metrics=metrics,
        title="MPP Reporting",
        version="0.1.0",
        lifespan=runtime.lifespan,
        readiness=runtime.readiness,
    )
    app.state.reporting = ReportingService(sessions, runtime)
    app.include_router(router)
    return app
