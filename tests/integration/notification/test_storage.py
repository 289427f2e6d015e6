"""The Alembic history builds exactly the declared schema, and the embedded SQLite default works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from mpp.notification.persistence.tables import metadata
from tests.integration.notification.harness import (
    application_returned,
    citizen_ref,
    contact_event,
    running_notification,
    ticket_called,
    visit_started,
)

pytestmark = pytest.mark.integration


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(context, metadata)
        if d[0] != "remove_table" or d[1].name != "alembic_version"
    ]


async def test_migrations_match_the_table_definitions(database_url: str) -> None:
    async with running_notification(database_url) as api, api.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_the_loopback_platform_default_on_sqlite(tmp_path: Path) -> None:
    ref, visit = citizen_ref(), "vis-sqlite-01"
    async with running_notification(f"sqlite:///{tmp_path / 'notification.db'}") as api:
        returned, called = application_returned(ref), ticket_called(visit)
        await api.deliver(contact_event(ref), visit_started(ref, visit), returned, called)
        await api.deliver(called)
        await api.settle()
        kept = await api.loopback()
        rows = await api.deliveries()
        sent = await api.published("NotificationSent")
    assert sorted(k["template"] for k in kept) == ["application_returned", "ticket_called"]
    assert {r["state"] for r in rows} == {"sent"} and len(rows) == 2
    assert len(sent) == 2
