"""Composition root: ``create_app(settings)`` wires database, projector, routes and telemetry."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.kit.runtime import ConsumerSpec, ServiceRuntime, build_runtime, service_app
from mpp.reporting.api.exports import router as exports_router
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
from mpp.reporting.persistence import repository
from mpp.reporting.persistence.tables import consumer_offsets, inbox, outbox

PROJECTOR_GROUP = "mpp.reporting.projector"
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


class ReportingService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], runtime: ServiceRuntime, catalogue: Catalogue
    ) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.repository: ModuleType = repository
        self.geography = Geography(catalogue)


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
    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        consumers=[
            ConsumerSpec(
                group_id=settings.consumer_group,
                topics=topics,
                handler=projector(site_tz, catalogue_sla(catalogue, site_tz)),
                event_types=PROJECTED_TYPES | FACT_TYPES,
                offsets_from_database_only=True,
            )
        ],
    )
    app = service_app(runtime, title="MPP Reporting", version="0.1.0")
    app.state.reporting = ReportingService(runtime.sessions, runtime, catalogue)
    app.include_router(router)
    app.include_router(metrics_router)
    app.include_router(page_auth_router)
    app.include_router(exports_router)
    app.add_exception_handler(LoginRequired, login_redirect)
    return app
