"""Composition root of the notification service.

The service's domain is not built yet: the process runs the shared runtime (migrations, outbox
relay, health, readiness and metrics) so deployments and the local platform already include it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from mpp.kit.runtime import build_runtime, service_app
from mpp.notification.config import NotificationSettings
from mpp.notification.persistence.tables import consumer_offsets, inbox, outbox

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    runtime = build_runtime(
        settings or NotificationSettings(),
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
    )
    return service_app(runtime, title="MPP Notification", version="0.1.0")
