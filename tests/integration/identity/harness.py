"""The identity service on a PostgreSQL database (migrations applied), driven over HTTP in process."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.events.common import Sex
from mpp.contracts.nik import generate_test_nik
from mpp.identity.app import create_app
from mpp.identity.config import IdentitySettings
from mpp.identity.persistence.tables import access_log, citizens
from mpp.kit.auth import Role, issue_token

SECRET = "identity-integration-secret-0123456789"
SITE = "mpp-kota-sukamaju"
OTHER_SITE = "mpp-kota-lain"
AGENCY = "disdukcapil"
NOW = datetime(2026, 11, 3, 2, 15, tzinfo=UTC)
TODAY = date(2026, 11, 3)


class FixedClock:
    """The identity clock port, frozen so ages and timestamps do not depend on the wall clock."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@dataclass
class IdentityApi:
    client: httpx.AsyncClient
    engine: AsyncEngine
    clock: FixedClock
    app: Any

    async def register(self, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        response = await self.client.post("/v1/citizens", json=body, headers=officer() | headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def citizen_rows(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(select(citizens))).all()]

    async def access_rows(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            query = select(access_log).order_by(access_log.c.id)
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]


def bearer(
    *,
    roles: list[Role],
    agency: str | None = AGENCY,
    site: str | None = SITE,
    subject: str = "officer-1",
) -> dict[str, str]:
    token = issue_token(SECRET, subject=subject, roles=roles, agency=agency, site=site)
    return {"Authorization": f"Bearer {token}"}


def officer(subject: str = "officer-1", *, agency: str = AGENCY, site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.OFFICER], agency=agency, site=site, subject=subject)


def supervisor(subject: str = "supervisor-1", *, agency: str = AGENCY, site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.SUPERVISOR], agency=agency, site=site, subject=subject)


def citizen(citizen_ref: str) -> dict[str, str]:
    return bearer(roles=[Role.CITIZEN], agency=None, site=None, subject=citizen_ref)


def person(seed: int, *, born: date = date(1985, 7, 5), sex: Sex = Sex.FEMALE) -> dict[str, Any]:
    """A synthetic, consistent registration body: the NIK encodes ``born`` and ``sex``."""
    rng = random.Random(seed)
    nik = generate_test_nik(rng, province_code="32", regency=98, birth_date=born, sex=sex, today=TODAY)
    kk = generate_test_nik(
        rng, province_code="32", regency=98, birth_date=date(2015, 3, 9), sex=Sex.MALE, today=TODAY
    )
    return {
        "nik": nik,
        "kk_number": kk,
        "full_name": f"Warga Uji {seed:04d}",
        "birth_date": born.isoformat(),
        "birth_place": "Kota Sukamaju",
        "sex": sex.value,
        "domicile_kabkota": "3298",
    }


def settings_for(database_url: str, **overrides: Any) -> IdentitySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "relay_enabled": False,
        "consumer_enabled": False,
        "jwt_hs256_secret": SECRET,
        "log_json": False,
        "log_level": "WARNING",
    }
    return IdentitySettings(**(values | overrides))


@contextlib.asynccontextmanager
async def running_identity(database_url: str, **overrides: Any) -> AsyncIterator[IdentityApi]:
    app = create_app(settings_for(database_url, **overrides))
    clock = FixedClock(NOW)
    app.state.identity.ports.clock = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield IdentityApi(client, app.state.identity.runtime.engine, clock, app)
