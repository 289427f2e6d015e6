"""A service process: migrations, Kafka producer, outbox relay and consumers around the HTTP app.

The runtime starts inside the FastAPI lifespan and stops there, so SIGTERM (handled by uvicorn)
first stops HTTP, then lets every consumer finish and commit its in-flight batch, drains the outbox
relay, and only then exits. A background task that dies terminates the process, so the orchestrator
restarts it instead of leaving a half-working service behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mpp.kit.consumer import BatchHandler, EventConsumer
from mpp.kit.db import create_engine, is_transient, ping, session_factory
from mpp.kit.http import create_http_app
from mpp.kit.kafka import KafkaSecurity, create_producer, ensure_topics
from mpp.kit.loopwatch import LoopWatch
from mpp.kit.migrations import upgrade
from mpp.kit.observability import ServiceMetrics, configure_logging, setup_tracing
from mpp.kit.relay import OutboxRelay
from mpp.kit.settings import ServiceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ConsumerSpec:
    group_id: str
    topics: Sequence[str]
    handler: BatchHandler
    event_types: frozenset[str] | None = None
    offsets_from_database_only: bool = False
    pipelined: bool = False
    """Read and prepare the next batch while the previous one is written (see :mod:`mpp.kit.consumer`)."""


async def retry_startup(what: str, action: Callable[[], Awaitable[T]], timeout_s: float = 120.0) -> T:
    """Retry a startup step while its dependency (database, broker) is not reachable yet."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        try:
            return await action()
        except Exception as exc:
            transient = is_transient(exc) or type(exc).__name__.startswith("Kafka")
            if not transient or time.monotonic() > deadline:
                raise
            log.warning("kit.runtime.waiting", extra={"step": what, "error": type(exc).__name__})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)


class ServiceRuntime:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        inbox: Table,
        offsets: Table,
        migrations: Path,
        consumers: Sequence[ConsumerSpec] = (),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine = engine
        self.sessions = sessions
        self.outbox = outbox
        self.inbox = inbox
        self.offsets = offsets
        self.migrations = migrations
        self.consumer_specs = list(consumers)
        self.relay_wakeup = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: list[EventConsumer] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._kafka_started = False
        self.loop_watch: LoopWatch | None = None

    async def migrate(self) -> None:
        await retry_startup("migrations", lambda: upgrade(self.engine, self.migrations))

    async def start(self) -> None:
        if self.settings.loop_block_threshold_s > 0:
            self.loop_watch = LoopWatch(
                self.metrics.event_loop_lag_seconds, block_threshold=self.settings.loop_block_threshold_s
            )
            self.loop_watch.start()
        await self.migrate()
        needs_kafka = self.settings.relay_enabled or (self.settings.consumer_enabled and self.consumer_specs)
        if not needs_kafka:
            return
        name = self.settings.service_name
        bootstrap = self.settings.kafka_bootstrap_servers

        security = KafkaSecurity.from_settings(self.settings)

        async def start_producer() -> AIOKafkaProducer:
            producer = create_producer(bootstrap, client_id=name, security=security)
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            return producer

        self.producer = await retry_startup("kafka", start_producer)
        self._kafka_started = True
        if self.settings.kafka_create_topics:
            replication = self.settings.kafka_replication_factor
            await retry_startup(
                "topics", lambda: ensure_topics(bootstrap, replication_factor=replication, security=security)
            )
        if self.settings.relay_enabled:
            self.relay = OutboxRelay(
                engine=self.engine,
                outbox=self.outbox,
                producer=self.producer,
                metrics=self.metrics,
                batch_size=self.settings.outbox_batch_size,
                poll_interval_s=self.settings.outbox_poll_interval_s,
                coalesce_s=self.settings.outbox_coalesce_s,
                wakeup=self.relay_wakeup,
                lock_name=f"{name}-outbox-relay",
            )
            self._spawn("relay", self.relay.run(self._stop))
        if self.settings.consumer_enabled:
            for spec in self.consumer_specs:
                consumer = EventConsumer(
                    group_id=spec.group_id,
                    topics=spec.topics,
                    bootstrap=bootstrap,
                    sessions=self.sessions,
                    inbox=self.inbox,
                    offsets=self.offsets,
                    handler=spec.handler,
                    producer=self.producer,
                    metrics=self.metrics,
                    max_records=self.settings.consumer_max_records,
                    client_id=f"{name}-{socket.gethostname()}-{os.getpid()}",
                    event_types=spec.event_types,
                    offsets_from_database_only=spec.offsets_from_database_only,
                    security=security,
                    pipelined=spec.pipelined,
                )
                await retry_startup(f"consumer {spec.group_id}", consumer.start)
                self.consumers.append(consumer)
                self._spawn(f"consumer {spec.group_id}", consumer.run(self._stop))
        log.info("kit.runtime.started", extra={"service": name, "consumers": len(self.consumers)})

    def _spawn(self, name: str, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        log.critical(
            "kit.runtime.task_died",
            extra={"task": task.get_name(), "error": repr(exc) if exc else "returned"},
        )
        # Crash-only: let the orchestrator (or make run) restart a process whose worker died.
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            # Within the orchestrator's grace period: HTTP drains first (10 s), then the workers.
            _done, pending = await asyncio.wait(self._tasks, timeout=25)
            for task in pending:
                task.cancel()
        for consumer in self.consumers:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        await self.engine.dispose()
        if self.loop_watch is not None:
            await self.loop_watch.stop()
        log.info("kit.runtime.stopped", extra={"service": self.settings.service_name})

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": await ping(self.engine)}
        if self.settings.relay_enabled or self.consumer_specs:
            checks["kafka"] = self._kafka_started
            checks["workers"] = all(not t.done() for t in self._tasks)
        return checks

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        settle_heap()
        try:
            yield
        finally:
            await self.stop()


def settle_heap() -> None:
    """Move everything the startup built (modules, the catalogue, SQLAlchemy's tables and compiled
    statements, the HTTP app: some 170,000 objects) out of the cyclic garbage collector's reach.

    They live as long as the process, yet a full collection scans every one of them: about 80-110 ms
    with the event loop stopped, several times a minute under load, and every request in flight waits
    for it (the queue's call-next p99). After :func:`gc.freeze` a full collection scans only what was
    made since. Frozen objects are never freed, which is what they would be anyway."""
    gc.collect()
    gc.freeze()


def build_runtime(
    settings: ServiceSettings,
    *,
    outbox: Table,
    inbox: Table,
    offsets: Table,
    migrations: Path,
    consumers: Sequence[ConsumerSpec] = (),
    metrics: ServiceMetrics | None = None,
) -> ServiceRuntime:
    """The usual wiring of a service process: logging, tracing, metrics, database engine and runtime.

    Logging and tracing are set up by the caller first when it passes its own ``metrics`` (a service
    that registers counters of its own before building its consumers).
    """
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, settings.otlp_endpoint)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    return ServiceRuntime(
        settings=settings,
        metrics=metrics or ServiceMetrics(settings.service_name),
        engine=engine,
        sessions=session_factory(engine),
        outbox=outbox,
        inbox=inbox,
        offsets=offsets,
        migrations=migrations,
        consumers=consumers,
    )


def service_app(runtime: ServiceRuntime, *, title: str, version: str) -> FastAPI:
    """The HTTP app of a service whose lifespan starts and stops the runtime."""
    return create_http_app(
        settings=runtime.settings,
        metrics=runtime.metrics,
        title=title,
        version=version,
        lifespan=runtime.lifespan,
        readiness=runtime.readiness,
    )
