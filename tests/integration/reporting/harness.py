"""The reporting service on a PostgreSQL database (migrations applied), fed through its projector and read
over HTTP, without Kafka."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.licensing import ApplicationSubmittedV1, PermitIssuedV1
from mpp.contracts.examples import example_payload
from mpp.kit.auth import Role, issue_token
from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import create_app
from mpp.reporting.config import ReportingSettings

SECRET = "reporting-integration-secret-0123456789"
SITE = "mpp-kota-sukamaju"
OTHER_SITE = "mpp-kota-balikpapan"
ZONES = {SITE: ZoneInfo("Asia/Jakarta"), OTHER_SITE: ZoneInfo("Asia/Makassar")}


def site_tz(site: str) -> ZoneInfo:
    return ZONES[site]


@dataclass
class ReportingApi:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    app: FastAPI

    async def project(self, envelopes: Sequence[Envelope]) -> None:
        """Apply one consumed batch through the projector, in one transaction as the consumer does."""
        batch = [
            ReceivedEvent(envelope=env, topic=env.topic, partition=0, offset=offset)
            for offset, env in enumerate(envelopes)
        ]
        async with self.sessions() as session, session.begin():
            await projector(site_tz)(session, batch)

    async def daily(self, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/figures/daily", params=params, headers=headers)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows

    async def totals(self, headers: dict[str, str], **params: str) -> dict[str, int]:
        response = await self.client.get("/v1/figures/totals", params=params, headers=headers)
        assert response.status_code == 200, response.text
        totals: dict[str, int] = response.json()["totals"]
        return totals


def bearer(
    *, roles: list[Role], agency: str | None = None, site: str | None = None, subject: str = "user-1"
) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {issue_token(SECRET, subject=subject, roles=roles, agency=agency, site=site)}"
    }


def ministry() -> dict[str, str]:
    return bearer(roles=[Role.MINISTRY], subject="ministry-1")


def operator(site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.OPERATOR], site=site, subject="operator-1")


def officer(agency: str, site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.OFFICER], agency=agency, site=site, subject="officer-1")


def _wrap(payload: EventPayload, *, site: str, agency: str) -> Envelope:
    return Envelope.wrap(
        payload, producer="mpp.licensing", agency=agency, site=site, subject="lic-2026-000318"
    )


def submitted(at: datetime, *, site: str = SITE, service_type: str = "dpmptsp.pbg") -> Envelope:
    payload = example_payload(ApplicationSubmittedV1).model_copy(
        update={"submitted_at": at, "service_type": service_type}
    )
    return _wrap(payload, site=site, agency=service_type.partition(".")[0])


def issued(at: datetime, *, site: str = SITE, service_type: str = "dpmptsp.pbg") -> Envelope:
    payload = example_payload(PermitIssuedV1).model_copy(
        update={"issued_at": at, "service_type": service_type}
    )
    return _wrap(payload, site=site, agency=service_type.partition(".")[0])


@contextlib.asynccontextmanager
async def running_reporting(database_url: str, **overrides: Any) -> AsyncIterator[ReportingApi]:
    settings = ReportingSettings(
        **{
            "database_url": database_url,
            "relay_enabled": False,
            "consumer_enabled": False,
            "jwt_hs256_secret": SECRET,
            "log_json": False,
            "log_level": "WARNING",
            **overrides,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield ReportingApi(client, app.state.reporting.sessions, app)
