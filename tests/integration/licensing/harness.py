"""The licensing service on a PostgreSQL database (migrations applied), driven over HTTP without Kafka."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import AgeBand
from mpp.contracts.events.identity import (
    CitizenVerificationFailedV1,
    CitizenVerifiedV1,
    VerificationFailure,
)
from mpp.contracts.nik import generate_test_nik
from mpp.contracts.topics import IDENTITY_VERIFICATION_REQUESTS
from mpp.kit.auth import Role, issue_token
from mpp.kit.consumer import ReceivedEvent
from mpp.kit.outbox import decode_headers
from mpp.licensing.api.messaging import verification_results
from mpp.licensing.app import create_app
from mpp.licensing.config import LicensingSettings
from mpp.licensing.persistence.tables import applications, outbox

SECRET = "licensing-integration-secret-0123456789"
SITE = "mpp-kota-sukamaju"
OTHER_SITE = "mpp-kota-lain"
AGENCY = "dpmptsp"
SERVICE_TYPE = "dpmptsp.pbg"
NOW = datetime(2026, 11, 3, 2, 15, tzinfo=UTC)
CITIZEN_REF = "c_5f2b9a0c1d3e4f60718293a4b5c6d7e8"


class FixedClock:
    """The licensing clock port, frozen so permit numbers do not depend on the wall clock."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class OutboxEntry:
    event_type: str
    value: bytes
    headers: dict[str, str]


@dataclass
class LicensingApi:
    client: httpx.AsyncClient
    engine: AsyncEngine
    clock: FixedClock
    app: FastAPI

    async def outbox(self, application_id: str) -> list[OutboxEntry]:
        """The outbox rows of one application (keyed by its id), in the order they were written."""
        query = (
            select(outbox.c.value, outbox.c.headers)
            .where(outbox.c.key == application_id.encode())
            .order_by(outbox.c.seq)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        entries = []
        for value, headers in rows:
            named = {k: v.decode() for k, v in decode_headers(headers)}
            entries.append(OutboxEntry(named["ce_type"], bytes(value), named))
        return entries

    async def stored(self) -> tuple[int, int]:
        """How many applications and application events (outbox rows) the database holds."""
        return await self.application_count(), await self.outbox_size()

    async def outbox_size(self) -> int:
        """Outbox rows of application events; NIK verification requests are not counted here."""
        query = (
            select(func.count()).select_from(outbox).where(outbox.c.topic != IDENTITY_VERIFICATION_REQUESTS)
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def verification_requests(self) -> list[dict[str, Any]]:
        """The payloads of the NIK verification requests in the outbox, in the order they were written."""
        query = (
            select(outbox.c.value)
            .where(outbox.c.topic == IDENTITY_VERIFICATION_REQUESTS)
            .order_by(outbox.c.seq)
        )
        async with self.engine.connect() as conn:
            return [json.loads(bytes(value)) for (value,) in (await conn.execute(query)).all()]

    async def verification_request(self, application_id: str) -> dict[str, Any]:
        [request] = [r for r in await self.verification_requests() if r["case_id"] == application_id]
        return request

    async def deliver(self, *envelopes: Envelope) -> None:
        """Apply one consumed batch of verification results through the licensing consumer's handler, in
        one transaction as the consumer does (Kafka and the inbox are not involved)."""
        service = self.app.state.licensing
        batch = [
            ReceivedEvent(envelope=env, topic=env.topic, partition=0, offset=offset)
            for offset, env in enumerate(envelopes)
        ]
        async with service.runtime.sessions() as session, session.begin():
            await verification_results(service.ports, service.ignored_answers)(session, batch)

    async def nik_verified(self, application_id: str, citizen_ref: str = CITIZEN_REF) -> Envelope:
        """Identity's CitizenVerified answer to the application's verification request, delivered."""
        request = await self.verification_request(application_id)
        answer = identity_answer(
            CitizenVerifiedV1(
                request_id=request["request_id"],
                case_id=application_id,
                requesting_agency=request["requesting_agency"],
                citizen_ref=citizen_ref,
                age_band=AgeBand.FROM_26_TO_35,
                elderly_priority=False,
                verified_at=self.clock.now(),
            )
        )
        await self.deliver(answer)
        return answer

    async def nik_refused(self, application_id: str) -> Envelope:
        """Identity's CitizenVerificationFailed answer to the application's verification request, delivered."""
        request = await self.verification_request(application_id)
        answer = identity_answer(
            CitizenVerificationFailedV1(
                request_id=request["request_id"],
                case_id=application_id,
                requesting_agency=request["requesting_agency"],
                reason_code=VerificationFailure.NOT_FOUND,
                reason="NIK tidak terdaftar",
                retryable=False,
                failed_at=self.clock.now(),
            )
        )
        await self.deliver(answer)
        return answer

    async def submit(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        """Submit an application and let identity verify its NIK: the id of the application, now in its
        workflow's initial state."""
        response = await self.client.post("/v1/applications", json=body, headers=headers)
        assert response.status_code == 201, response.text
        application_id: str = response.json()["id"]
        await self.nik_verified(application_id)
        return application_id

    async def application_count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(applications))).scalar_one())


def bearer(
    *,
    roles: list[Role],
    agency: str | None = AGENCY,
    site: str | None = SITE,
    subject: str = "officer-1",
) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {issue_token(SECRET, subject=subject, roles=roles, agency=agency, site=site)}"
    }


def officer(subject: str = "officer-1", *, agency: str = AGENCY, site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.OFFICER], agency=agency, site=site, subject=subject)


def supervisor(subject: str = "supervisor-1", *, agency: str = AGENCY, site: str = SITE) -> dict[str, str]:
    return bearer(roles=[Role.SUPERVISOR], agency=agency, site=site, subject=subject)


# The path to an issued permit in each demo licensing workflow, with who takes each step.
PATH_TO_PERMIT: dict[str, list[tuple[str, str]]] = {
    "dpmptsp.pbg": [
        ("verify", "officer"),
        ("approve", "supervisor"),
        ("confirm_payment", "officer"),
        ("issue", "supervisor"),
    ],
    "dpmptsp.izin-usaha-toko-swalayan": [
        ("verify", "officer"),
        ("approve", "supervisor"),
        ("issue", "officer"),
    ],
    "dpmptsp.izin-penelitian": [("verify", "officer"), ("issue", "supervisor")],
}


async def act(
    api: LicensingApi, application_id: str, action: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await api.client.post(
        f"/v1/applications/{application_id}/actions/{action}", json=body, headers=headers
    )


async def carry_to_permit(
    api: LicensingApi,
    application_id: str,
    service_type: str = SERVICE_TYPE,
    *,
    stop_before_issue: bool = False,
) -> httpx.Response:
    """Walk an application along its workflow to the issued permit; the last response."""
    steps = PATH_TO_PERMIT[service_type]
    if stop_before_issue:
        steps = steps[:-1]
    response: httpx.Response | None = None
    for action, role in steps:
        response = await act(api, application_id, action, officer() if role == "officer" else supervisor())
        assert response.status_code == 200, response.text
    assert response is not None
    return response


def synthetic_nik(seed: int) -> str:
    return generate_test_nik(random.Random(seed))


def submission(
    *,
    seed: int = 1,
    name: str = "Siti Rahmawati",
    service_type: str = SERVICE_TYPE,
    **overrides: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service_type": service_type,
        "site": SITE,
        "channel": "walk_in",
        "applicant": {"nik": synthetic_nik(seed), "name": name},
        "documents": [
            {
                "requirement": "gambar-teknis",
                "file_name": "gambar.pdf",
                "content_type": "application/pdf",
                "size_bytes": 120_000,
            }
        ],
    }
    body.update(overrides)
    return body


@contextlib.asynccontextmanager
async def running_licensing(database_url: str) -> AsyncIterator[LicensingApi]:
    settings = LicensingSettings(
        database_url=database_url,
        relay_enabled=False,
        consumer_enabled=False,
        jwt_hs256_secret=SECRET,
        log_json=False,
        log_level="WARNING",
        sla_watch_enabled=False,
        verification_sweep_enabled=False,
    )
    app = create_app(settings)
    clock = FixedClock(NOW)
    app.state.licensing.ports.clock = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield LicensingApi(client, app.state.licensing.runtime.engine, clock, app)


def identity_answer(payload: EventPayload) -> Envelope:
    subject = payload.request_id  # type: ignore[attr-defined]
    return Envelope.wrap(payload, producer="mpp.identity", agency="disdukcapil", site=SITE, subject=subject)
