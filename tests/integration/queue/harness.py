"""The queue service on a real database (migrations applied), driven over HTTP without Kafka."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.kit.auth import Role, issue_token
from mpp.kit.outbox import decode_headers
from mpp.queue.app import create_app
from mpp.queue.config import QueueSettings
from mpp.queue.persistence.tables import outbox

SECRET = "queue-integration-secret-0123456789abcdef"
SITE = "mpp-kota-sukamaju"
OTHER_SITE = "mpp-kota-lain"
# 09:15 in Jakarta on a working day.
NOW = datetime(2026, 11, 3, 2, 15, tzinfo=UTC)

KTP = "disdukcapil.ktp-el-rekam"  # prefix A; loket-01 and loket-02
KK = "disdukcapil.kk"  # prefix B; loket-03 and loket-04
NIB = "dpmptsp.nib"  # prefix C; loket-05


class SteppingClock:
    """A frozen clock the tests move by hand, so durations and numbers do not depend on the wall clock."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@dataclass(frozen=True)
class OutboxEntry:
    topic: str
    key: str
    event_type: str
    payload: dict[str, Any]


@dataclass
class QueueApi:
    client: httpx.AsyncClient
    engine: AsyncEngine
    clock: SteppingClock
    app: FastAPI

    async def events(self, key: str | None = None) -> list[OutboxEntry]:
        """Outbox rows (optionally of one record key), in the order they were written."""
        query = select(outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers).order_by(outbox.c.seq)
        if key is not None:
            query = query.where(outbox.c.key == key.encode())
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for topic, k, value, headers in rows:
            named = {name: v.decode() for name, v in decode_headers(headers)}
            out.append(OutboxEntry(topic, bytes(k).decode(), named["ce_type"], json.loads(bytes(value))))
        return out

    async def event_types(self, key: str) -> list[str]:
        return [e.event_type for e in await self.events(key)]

    async def start_visit(
        self, *service_types: str, priority_group: str = "none", headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/visits",
            json={"service_types": list(service_types), "priority_group": priority_group},
            headers=headers or kiosk(),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ticket(self, service_type: str, priority_group: str = "none") -> dict[str, Any]:
        ticket: dict[str, Any] = (await self.start_visit(service_type, priority_group=priority_group))[
            "tickets"
        ][0]
        return ticket

    async def open_counter(self, code: str, headers: dict[str, str], **body: Any) -> None:
        response = await self.client.post(f"/v1/counters/{code}/open", json=body or None, headers=headers)
        assert response.status_code == 200, response.text

    async def call_next(self, code: str, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(f"/v1/counters/{code}/call-next", headers=headers)

    async def act(self, ticket_id: str, action: str, headers: dict[str, str], **body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/tickets/{ticket_id}/{action}", json=body or None, headers=headers)


def bearer(*, roles: list[Role], agency: str | None, site: str | None, subject: str) -> dict[str, str]:
    token = issue_token(SECRET, subject=subject, roles=roles, agency=agency, site=site)
    return {"Authorization": f"Bearer {token}"}


def kiosk(site: str = SITE) -> dict[str, str]:
    """A reception kiosk's device token: the kiosk role, bound to its site."""
    return bearer(roles=[Role.KIOSK], agency=None, site=site, subject=f"kiosk-{site}")


def officer(agency: str = "disdukcapil", subject: str = "officer-1", site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.OFFICER], agency=agency, site=site, subject=subject)


def supervisor(
    agency: str = "disdukcapil", subject: str = "supervisor-1", site: str = SITE
) -> dict[str, str]:
    return bearer(roles=[Role.SUPERVISOR], agency=agency, site=site, subject=subject)


def operator(site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.OPERATOR], agency=None, site=site, subject="operator-1")


@contextlib.asynccontextmanager
async def running_queue(
    database_url: str, *, pool_size: int = 10, **overrides: Any
) -> AsyncIterator[QueueApi]:
    settings = QueueSettings(
        database_url=database_url,
        database_pool_size=pool_size,
        relay_enabled=False,
        consumer_enabled=False,
        jwt_hs256_secret=SECRET,
        log_json=False,
        log_level="WARNING",
        **({"appointment_sweep_seconds": 0, "day_close_seconds": 0} | overrides),
    )
    app = create_app(settings)
    clock = SteppingClock(NOW)
    app.state.queue.ports.clock = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield QueueApi(client, app.state.queue.runtime.engine, clock, app)
