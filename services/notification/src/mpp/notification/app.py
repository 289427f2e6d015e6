"""Composition root of the notification service.

The service's domain is not built yet: the process runs the shared runtime (migrations, outbox
relay, health, readiness and metrics) so deployments and the local platform already include it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from mpp.kit.db import create_engine, session_factory
from mpp.kit.http import create_http_app
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.runtime import ServiceRuntime
from mpp.notification.config import NotificationSettings
from mpp.notification.persistence.tables import consumer_offsets, inbox, outbox

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    metrics = ServiceMetrics(settings.service_name)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    runtime = ServiceRuntime(
        settings=settings,
        metrics=metrics,
        engine=engine,
        sessions=session_factory(engine),
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
    )
    return create_http_app(
        settings=settings,
        metrics=metrics,
        title="MPP Notification",
        version="0.1.0",
        lifespan=runtime.lifespan,
        readiness=runtime.readiness,
    )
