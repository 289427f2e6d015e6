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


async def test_quiet_hours_and_delivery_reports_on_sqlite(tmp_path: Path) -> None:
    import json
    from datetime import UTC, datetime

    from mpp.notification.api.http import SIGNATURE_HEADER, signature
    from mpp.notification.config import DEV_WEBHOOK_SECRET

    ref = citizen_ref()
    async with running_notification(f"sqlite:///{tmp_path / 'notification.db'}") as api:
        api.clock.at = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 22:30 WIB
        returned = application_returned(ref)
        await api.deliver(contact_event(ref), returned)
        await api.service.dispatcher.dispatch_once()
        [waiting] = await api.deliveries(returned)
        api.clock.at = datetime(2026, 3, 2, 23, 59, tzinfo=UTC)  # 06:59 WIB
        await api.service.dispatcher.dispatch_once()
        [still] = await api.deliveries(returned)
        api.clock.at = datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC)
        await api.service.dispatcher.dispatch_once()
        [row] = await api.deliveries(returned)
        report = json.dumps({"statuses": [{"id": row["provider_message_id"], "status": "read"}]}).encode()
        answer = await api.client.post(
            f"/v1/webhooks/{row['provider']}/status",
            content=report,
            headers={SIGNATURE_HEADER: signature(DEV_WEBHOOK_SECRET, report)},
        )
        [delivered] = await api.published("NotificationDelivered")
    assert waiting["state"] == "pending" and still["state"] == "pending"
    assert row["state"] == "sent"
    assert answer.json() == {"received": 1, "matched": 1}
    assert delivered.payload["read_at"] is not None
