"""Composition root: ``create_app(settings)`` wires the trigger configuration, templates, providers, the
consumer, the dispatcher and the HTTP routes around the shared runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.events.notification import NotificationChannel
from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.contracts.topics import consumer_group
from mpp.kit.runtime import ConsumerSpec, build_runtime, service_app
from mpp.notification.api.http import router, webhooks
from mpp.notification.api.messaging import dispatcher_handler, event_types
from mpp.notification.config import NotificationSettings
from mpp.notification.dispatcher import Dispatcher, ProviderSlot
from mpp.notification.domain.resilience import Backoff, CircuitBreaker, TokenBucket
from mpp.notification.domain.rules import TriggerConfig, parse_trigger_config
from mpp.notification.domain.templates import TemplateBook, default_book
from mpp.notification.handlers import Rules, check_templates
from mpp.notification.persistence.protection import ContactCipher, decode_key
from mpp.notification.persistence.tables import consumer_offsets, inbox, outbox
from mpp.notification.ports import Provider
from mpp.notification.providers import (
    HttpSmsProvider,
    LoopbackProvider,
    SmtpEmailProvider,
    WhatsAppCloudProvider,
)
from mpp.notification.service import NotificationService

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
DEFAULT_TRIGGERS = Path(__file__).resolve().parent / "data" / "triggers.json"
DISPATCHER_GROUP = "mpp.notification.dispatcher"
SITE_PREFIX = "Mal Pelayanan Publik "
log = logging.getLogger(__name__)


class CatalogueNames:
    """Names for messages from the site's catalogue; an unknown code is shown as it is."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._sites = {s.code: s for s in catalogue.sites}
        self._services = {s.code: s for s in catalogue.service_types}
        self._counters = {c.code: c.name for c in catalogue.counters}

    def site_name(self, site: str) -> str:
        found = self._sites.get(site)
        if found is None:
            return "MPP"
        name = found.name
        return "MPP " + name[len(SITE_PREFIX) :] if name.startswith(SITE_PREFIX) else name

    def service_name(self, service_type: str) -> str:
        found = self._services.get(service_type)
        return found.name if found else service_type

    def counter_name(self, counter: str) -> str:
        return self._counters.get(counter, f"loket {counter}")

    def requirement_name(self, service_type: str, code: str) -> str:
        found = self._services.get(service_type)
        for requirement in found.requirements if found else ():
            if requirement.code == code:
                return requirement.description
        return code.replace("-", " ")

    def timezone(self, site: str) -> str:
        found = self._sites.get(site)
        return found.timezone if found else "Asia/Jakarta"


def load_triggers(settings: NotificationSettings, book: TemplateBook) -> TriggerConfig:
    """The trigger configuration, validated against the contracts and the templates (or ConfigError)."""
    path = settings.trigger_file or DEFAULT_TRIGGERS
    config = parse_trigger_config(path.read_text(encoding="utf-8"), source=str(path.name))
    check_templates(config, book)
    return config


def build_providers(
    settings: NotificationSettings, sessions: async_sessionmaker[AsyncSession]
) -> dict[NotificationChannel, Provider]:
    providers: dict[NotificationChannel, Provider] = {}
    timeout = settings.provider_timeout_s
    if settings.whatsapp_provider == "cloud":
        providers[NotificationChannel.WHATSAPP] = WhatsAppCloudProvider(
            base_url=settings.whatsapp_base_url,
            phone_number_id=settings.whatsapp_phone_number_id,
            token=settings.whatsapp_token.get_secret_value(),
            timeout_s=timeout,
            connections=settings.dispatch_concurrency,
            ca_file=settings.provider_ca_file,
        )
    elif settings.whatsapp_provider == "loopback":
        providers[NotificationChannel.WHATSAPP] = LoopbackProvider(sessions, NotificationChannel.WHATSAPP)
    if settings.sms_provider == "http":
        providers[NotificationChannel.SMS] = HttpSmsProvider(
            url=settings.sms_url,
            token=settings.sms_token.get_secret_value(),
            sender=settings.sms_sender,
            timeout_s=timeout,
            connections=settings.dispatch_concurrency,
            ca_file=settings.provider_ca_file,
        )
    elif settings.sms_provider == "loopback":
        providers[NotificationChannel.SMS] = LoopbackProvider(sessions, NotificationChannel.SMS)
    if settings.email_provider == "smtp":
        providers[NotificationChannel.EMAIL] = SmtpEmailProvider(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.email_from,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=timeout,
            ca_file=settings.smtp_ca_file,
            verify=settings.smtp_tls_verify,
        )
    elif settings.email_provider == "loopback":
        providers[NotificationChannel.EMAIL] = LoopbackProvider(sessions, NotificationChannel.EMAIL)
    return providers


def _rate(settings: NotificationSettings, channel: NotificationChannel) -> tuple[float, int]:
    if channel is NotificationChannel.WHATSAPP:
        return settings.whatsapp_rate_per_s, settings.whatsapp_burst
    if channel is NotificationChannel.SMS:
        return settings.sms_rate_per_s, settings.sms_burst
    return settings.email_rate_per_s, settings.email_burst


def create_app(
    settings: NotificationSettings | None = None,
    *,
    providers: dict[NotificationChannel, Provider] | None = None,
) -> FastAPI:
    """The service. ``providers`` replaces the configured ones (tests)."""
    settings = settings or NotificationSettings()
    catalogue = (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )
    book = default_book()
    config = load_triggers(settings, book)
    rules = Rules(
        config=config,
        book=book,
        names=CatalogueNames(catalogue),
        cipher=ContactCipher(decode_key(settings.data_key.get_secret_value())),
        now=lambda: datetime.now(UTC),
    )
    kick: list[asyncio.Event] = []

    def applied() -> None:
        for event in kick:
            event.set()

    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
        consumers=[
            ConsumerSpec(
                group_id=settings.dispatcher_group,
                topics=consumer_group(DISPATCHER_GROUP).topics,
                handler=dispatcher_handler(rules, applied),
                event_types=event_types(rules),
            )
        ],
    )
    settings.warn_development_secrets()
    chosen = providers if providers is not None else build_providers(settings, runtime.sessions)
    slots = {
        channel: ProviderSlot(
            provider=provider,
            breaker=CircuitBreaker(
                time.monotonic, threshold=settings.breaker_threshold, reset_s=settings.breaker_reset_s
            ),
            bucket=TokenBucket(
                time.monotonic, rate=_rate(settings, channel)[0], burst=_rate(settings, channel)[1]
            ),
        )
        for channel, provider in chosen.items()
    }
    dispatcher = Dispatcher(
        sessions=runtime.sessions,
        outbox=outbox,
        wakeup=runtime.relay_wakeup,
        slots=slots,
        rules=rules,
        backoff=Backoff(settings.backoff_base_s, settings.backoff_max_s),
        max_attempts=settings.max_attempts,
        batch_size=settings.dispatch_batch_size,
        concurrency=settings.dispatch_concurrency,
        unkeyed_concurrency=settings.dispatch_unkeyed_concurrency,
        poll_interval_s=settings.dispatch_poll_interval_s,
        send_timeout_s=settings.provider_timeout_s * 3,
        rng=random.Random(),
    )
    kick.append(dispatcher.kick)
    app = service_app(runtime, title="MPP Notification", version="0.2.0")
    service = NotificationService(runtime, rules, dispatcher)
    app.state.notification = service
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with runtime_lifespan(app_) as state:
            stop = asyncio.Event()
            task = (
                asyncio.create_task(dispatcher.run(stop), name="dispatcher")
                if settings.dispatcher_enabled
                else None
            )
            try:
                yield state
            finally:
                stop.set()
                if task is not None:
                    await task
                for slot in slots.values():
                    with contextlib.suppress(Exception):
                        await slot.provider.close()

    app.router.lifespan_context = lifespan
    app.include_router(router)
    app.include_router(webhooks)
    return app
