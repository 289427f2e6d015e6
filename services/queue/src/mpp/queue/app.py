"""Composition root: ``create_app(settings)`` wires database, Kafka runtime, routes and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from mpp.contracts.masterdata import Calendar, Catalogue, load_catalogue, load_demo_catalogue
from mpp.kit.http import add_inner_middleware
from mpp.kit.runtime import ServiceRuntime, build_runtime, service_app
from mpp.queue.api import appointments as appointments_api
from mpp.queue.api import feedback as feedback_api
from mpp.queue.api.board import install_board
from mpp.queue.api.cycle_batch import CycleBatcher
from mpp.queue.api.hot_routes import CounterCycleRoutes
from mpp.queue.api.http import one_visit, public, router, run_alone, visit_body
from mpp.queue.api.visit_batch import VisitBatcher
from mpp.queue.config import QueueSettings
from mpp.queue.domain.appointments import AppointmentRules, Rulebook
from mpp.queue.handlers import FeedbackRules, Ports
from mpp.queue.persistence.protection import DEV_DATA_KEY, TextSealer, decode_key
from mpp.queue.persistence.tables import consumer_offsets, inbox, outbox
from mpp.queue.persistence.uow import QueueUnitOfWork
from mpp.queue.ports import CounterInfo, ServiceInfo
from mpp.queue.sweeper import day_closer, missed_sweeper

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class CatalogueAdapter:
    """The queue's view of the site's service catalogue."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._services = {
            st.code: ServiceInfo(
                code=st.code, agency=st.agency, prefix=st.ticket_prefix, online_enabled=st.online_enabled
            )
            for st in catalogue.service_types
        }
        self._counters = {
            (c.site, c.code): CounterInfo(
                code=c.code, site=c.site, agency=c.agency, service_types=c.service_types
            )
            for c in catalogue.counters
        }
        self._sites = {s.code: s for s in catalogue.sites}
        self._calendars = {c.code: c for c in catalogue.calendars}
        # A site the catalogue does not list (a test or demo site) lives in the first site's time zone.
        self._default_site = catalogue.sites[0]

    def service(self, code: str) -> ServiceInfo | None:
        return self._services.get(code)

    def counter(self, site: str, code: str) -> CounterInfo | None:
        return self._counters.get((site, code))

    def counters_at(self, site: str) -> tuple[CounterInfo, ...]:
        return tuple(c for (s, _), c in sorted(self._counters.items()) if s == site)

    def site_zone(self, site: str) -> tzinfo:
        return ZoneInfo(self._sites.get(site, self._default_site).timezone.value)

    def site_manager(self, site: str) -> str:
        return self._sites.get(site, self._default_site).manager_agency

    def site_calendar(self, site: str) -> Calendar:
        return self._calendars[self._sites.get(site, self._default_site).calendar]


class QueueService:
    """What the HTTP edge needs: a unit-of-work factory and the ports."""

    def __init__(self, runtime: ServiceRuntime, ports: Ports, sealer: TextSealer | None = None) -> None:
        self.runtime = runtime
        self.ports = ports
        self.sealer = sealer
        # SQLite has no row locks; one process serializes its transactions instead (see QueueUnitOfWork).
        self._writer_lock = asyncio.Lock() if runtime.engine.dialect.name == "sqlite" else None
        self.visit_batcher: VisitBatcher | None = None
        """Group commit of concurrent kiosk visits (None: each visit in its own transaction)."""
        self.cycle_batcher: CycleBatcher | None = None
        """Group commit of the counters' cycle (None: each request in its own transaction)."""

    def uow(self, *, lean: bool = False) -> QueueUnitOfWork:
        """A unit of work; ``lean`` for the counters' cycle (see :class:`QueueUnitOfWork`)."""
        return QueueUnitOfWork(
            self.runtime.sessions, self.runtime.relay_wakeup, self._writer_lock, self.sealer, lean=lean
        )


def appointment_rulebook(settings: QueueSettings) -> Rulebook:
    default = AppointmentRules(
        slot_minutes=settings.appointment_slot_minutes,
        quota_per_slot=settings.appointment_quota_per_slot,
        quota_per_day=settings.appointment_quota_per_day,
        checkin_early_minutes=settings.appointment_checkin_early_minutes,
        checkin_late_minutes=settings.appointment_checkin_late_minutes,
        book_ahead_days=settings.appointment_book_ahead_days,
        working_days_only=settings.appointment_working_days_only,
    )
    overrides = {
        code: AppointmentRules(**{**default.__dict__, **values})
        for code, values in settings.appointment_rules.items()
    }
    return Rulebook(default, overrides)


def create_app(settings: QueueSettings | None = None) -> FastAPI:
    settings = settings or QueueSettings()
    catalogue = (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )
    runtime = build_runtime(
        settings,
        outbox=outbox,
        inbox=inbox,
        offsets=consumer_offsets,
        migrations=MIGRATIONS,
    )
    app = service_app(runtime, title="MPP Queue", version="0.2.0")
    ports = Ports(
        clock=SystemClock(),
        catalogue=CatalogueAdapter(catalogue),
        appointments=appointment_rulebook(settings),
        feedback=FeedbackRules(
            survey_window=timedelta(hours=settings.survey_window_hours),
            complaint_first_response_days=settings.complaint_first_response_days,
        ),
        day_close_grace=timedelta(minutes=settings.day_close_grace_minutes),
    )
    if settings.data_key.get_secret_value() == DEV_DATA_KEY:
        log.warning("queue.keys.development_default", extra={"keys": ["data_key"]})
    sealer = TextSealer(decode_key(settings.data_key.get_secret_value()))
    app.state.queue = QueueService(runtime, ports, sealer)
    if settings.visit_batch_max > 1:
        app.state.queue.visit_batcher = VisitBatcher(
            app.state.queue,
            visit_body,
            partial(one_visit, app.state.queue),
            wait_seconds=settings.visit_batch_wait_ms / 1000,
            max_batch=settings.visit_batch_max,
        )
    if settings.cycle_batch_max > 1 and runtime.engine.dialect.name == "postgresql":
        app.state.queue.cycle_batcher = CycleBatcher(
            app.state.queue,
            partial(run_alone, app.state.queue, lean=True),
            max_batch=settings.cycle_batch_max,
            writers=settings.cycle_batch_writers,
        )
    app.state.queue_catalogue = catalogue
    app.include_router(router)
    app.include_router(public)
    install_board(app, runtime, catalogue)
    app.include_router(appointments_api.router)
    app.include_router(appointments_api.public)
    app.include_router(feedback_api.router)
    app.include_router(feedback_api.public)
    app.include_router(feedback_api.pages)
    if settings.http_fast_routes:
        add_inner_middleware(app, CounterCycleRoutes, routes=router.routes)
    runtime_lifespan = app.router.lifespan_context
    sweep_every = settings.appointment_sweep_seconds

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with (
            runtime_lifespan(a),
            missed_sweeper(app.state.queue, sweep_every),
            day_closer(app.state.queue, settings.day_close_seconds),
        ):
            yield

    app.router.lifespan_context = lifespan
    return app
