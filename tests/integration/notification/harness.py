"""The notification service on a PostgreSQL database (migrations applied), with providers of the test's
choosing, fed events through its consumer's handler and dispatched on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.events.licensing import ApplicationReturnedV1, ApplicationSubmittedV1
from mpp.contracts.events.notification import CitizenContactRegisteredV1, NotificationChannel
from mpp.contracts.events.queue import TicketCalledV1, TicketIssuedV1, VisitStartedV1
from mpp.kit.auth import Role, issue_token
from mpp.kit.consumer import ReceivedEvent
from mpp.kit.outbox import decode_headers
from mpp.notification.api.messaging import dispatcher_handler
from mpp.notification.app import create_app
from mpp.notification.config import NotificationSettings
from mpp.notification.persistence.tables import deliveries, loopback_messages, outbox
from mpp.notification.ports import Provider
from mpp.notification.service import NotificationService

SECRET = "notification-integration-secret-0123456789"
SITE = "mpp-kota-sukamaju"
OTHER_SITE = "mpp-kota-lain"
# 10:00 WIB on a Monday: outside quiet hours.
DAYTIME = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


class Clock:
    """A test clock that moves only when told, and by one microsecond per reading (records keep order)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        self.at += timedelta(microseconds=1)
        return self.at


@dataclass(frozen=True)
class Published:
    type: str
    payload: dict[str, Any]


@dataclass
class NotificationApi:
    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    clock: Clock

    @property
    def service(self) -> NotificationService:
        service: NotificationService = self.app.state.notification
        return service

    async def deliver(self, *envelopes: Envelope) -> None:
        """One consumed batch through the consumer's handler, in one transaction as the consumer does."""
        batch = [
            ReceivedEvent(envelope=e, topic=e.topic, partition=0, offset=i) for i, e in enumerate(envelopes)
        ]
        async with self.service.runtime.sessions() as session, session.begin():
            await dispatcher_handler(self.service.rules)(session, batch)

    async def settle(self, *, rounds: int = 400) -> None:
        """Dispatch until no delivery is pending (retries included; the clock moves past backoffs)."""
        for _ in range(rounds):
            handled = await self.service.dispatcher.dispatch_once()
            if handled:
                continue
            pending = [r for r in await self.deliveries() if r["state"] in ("pending", "sending")]
            if not pending:
                return
            later_ones = [r["not_before"] for r in pending if r["not_before"] > self.clock.now()]
            if later_ones:
                self.clock.at = min(later_ones)
            await asyncio.sleep(0.01)
        raise AssertionError("deliveries did not settle")

    async def deliveries(self, trigger: Envelope | None = None) -> list[dict[str, Any]]:
        query = select(deliveries).order_by(deliveries.c.created_at, deliveries.c.id)
        if trigger is not None:
            query = query.where(deliveries.c.trigger_event_id == str(trigger.id))
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings().all()]

    async def published(self, *types: str) -> list[Published]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(outbox.c.value, outbox.c.headers).order_by(outbox.c.seq))).all()
        found = []
        for value, headers in rows:
            named = {k: v.decode() for k, v in decode_headers(headers)}
            if not types or named["ce_type"] in types:
                found.append(Published(named["ce_type"], json.loads(bytes(value))))
        return found

    async def loopback(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(loopback_messages).order_by(loopback_messages.c.received_at))
            ).mappings()
            return [dict(r) for r in rows.all()]


def settings_for(database_url: str, **overrides: Any) -> NotificationSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "relay_enabled": False,
        "consumer_enabled": False,
        "dispatcher_enabled": False,
        "jwt_hs256_secret": SECRET,
        "log_json": False,
        "log_level": "WARNING",
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "provider_timeout_s": 2.0,
        "max_attempts": 4,
        "whatsapp_rate_per_s": 1000,
        "whatsapp_burst": 1000,
        "sms_rate_per_s": 1000,
        "sms_burst": 1000,
        "email_rate_per_s": 1000,
        "email_burst": 1000,
    }
    values.update(overrides)
    return NotificationSettings(**values)


@contextlib.asynccontextmanager
async def running_notification(
    database_url: str, *, providers: dict[NotificationChannel, Provider] | None = None, **overrides: Any
) -> AsyncIterator[NotificationApi]:
    app = create_app(settings_for(database_url, **overrides), providers=providers)
    clock = Clock(DAYTIME)
    app.state.notification.rules.now = clock.now
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield NotificationApi(app, client, app.state.notification.runtime.engine, clock)


def bearer(
    *, roles: list[Role], subject: str = "user-1", agency: str | None = None, site: str | None = SITE
) -> dict[str, str]:
    token = issue_token(SECRET, subject=subject, roles=roles, agency=agency, site=site)
    return {"Authorization": f"Bearer {token}"}


def citizen_ref() -> str:
    return f"c_{uuid.uuid4().hex}"


def wrap(payload: EventPayload, *, producer: str, agency: str, subject: str, site: str = SITE) -> Envelope:
    return Envelope.wrap(payload, producer=producer, agency=agency, site=site, subject=subject)


def contact_event(
    ref: str,
    *,
    phone: str | None = "+6281234567890",
    email: str | None = None,
    whatsapp: bool = True,
    preferred: NotificationChannel = NotificationChannel.WHATSAPP,
    consent: bool = False,
) -> Envelope:
    return wrap(
        CitizenContactRegisteredV1(
            citizen_ref=ref,
            phone=phone,
            email=email,
            whatsapp=whatsapp,
            preferred_channel=preferred,
            optional_messages_consent=consent,
            consent_recorded_at=DAYTIME,
            source_agency="disdukcapil",
            registered_at=DAYTIME,
        ),
        producer="mpp.identity",
        agency="disdukcapil",
        subject=ref,
    )


def visit_started(ref: str, visit_id: str) -> Envelope:
    return wrap(
        VisitStartedV1(visit_id=visit_id, channel=Channel.WALK_IN, citizen_ref=ref, started_at=DAYTIME),
        producer="mpp.queue",
        agency="mpp",
        subject=visit_id,
    )


def ticket_called(
    visit_id: str, number: str = "A-012", counter: str = "loket-02", *, ticket_id: str | None = None
) -> Envelope:
    return wrap(
        TicketCalledV1(
            visit_id=visit_id,
            ticket_id=ticket_id or f"tkt-{uuid.uuid4().hex[:12]}",
            ticket_number=number,
            service_type="disdukcapil.ktp-el-rekam",
            agency="disdukcapil",
            counter=counter,
            officer_ref="usr-dukcapil-017",
            called_at=DAYTIME,
            waiting_seconds=600,
        ),
        producer="mpp.queue",
        agency="disdukcapil",
        subject=visit_id,
    )


def ticket_issued(visit_id: str) -> Envelope:
    return wrap(
        TicketIssuedV1(
            visit_id=visit_id,
            ticket_id=f"tkt-{uuid.uuid4().hex[:12]}",
            ticket_number="A-013",
            service_type="disdukcapil.ktp-el-rekam",
            agency="disdukcapil",
            priority_group=PriorityGroup.NONE,
            channel=Channel.WALK_IN,
            issued_at=DAYTIME,
        ),
        producer="mpp.queue",
        agency="disdukcapil",
        subject=visit_id,
    )


def application_returned(ref: str, *, site: str = SITE) -> Envelope:
    app_id = f"lic-{uuid.uuid4().hex[:10]}"
    return wrap(
        ApplicationReturnedV1(
            application_id=app_id,
            service_type="dpmptsp.pbg",
            applicant_ref=ref,
            missing=("gambar-teknis",),
            note="Gambar struktur belum ditandatangani tenaga ahli.",
            returned_at=DAYTIME,
        ),
        producer="mpp.licensing",
        agency="dpmptsp",
        subject=app_id,
        site=site,
    )


def application_submitted(ref: str) -> Envelope:
    app_id = f"lic-{uuid.uuid4().hex[:10]}"
    return wrap(
        ApplicationSubmittedV1(
            application_id=app_id,
            service_type="dpmptsp.pbg",
            applicant_ref=ref,
            channel=Channel.ONLINE,
            tracking_code="PBG-7K3M-2Q",
            submitted_at=DAYTIME,
            documents=5,
        ),
        producer="mpp.licensing",
        agency="dpmptsp",
        subject=app_id,
    )


def later(clock: Clock, seconds: float) -> None:
    clock.at = clock.at + timedelta(seconds=seconds)
