"""``python -m mpp.reporting rebuild``: empty the read models and replay every projected topic into them.

The rebuild works in place, in the service's own database and under the projector's consumer group
(``MPP_REPORTING_CONSUMER_GROUP``), while no projector runs (see :mod:`.persistence.projector_lock`):

1. it takes the read models' lock exclusively, or refuses to start while a projector holds it;
2. it notes each partition's end offset on the broker: what it will replay up to;
3. in one transaction it empties every read model, the group's inbox and its stored offsets (keeping a
   partition's *origin*, see below) and, on PostgreSQL, marks the roll-ups pending (``rollups_pending``);
4. it reads every partition from its start with large fetches and hands each fetched batch to the
   projector's own batch processing: parse, fold in memory, one upsert per daily read model (the roll-ups
   are pending: about half the rows a live batch writes), the inbox of event ids and the consumed offsets
   in one transaction per batch (pipelined: a batch is read and folded while the previous one is
   written), so a rebuild that is interrupted (even by ``kill -9``) resumes where it stopped when the
   service starts, and duplicates on the log are skipped exactly as the service skips them;
5. at the noted ends it fills every roll-up from the daily read models, a few at once on separate
   connections, and clears the mark once they have all committed (a rebuild stopped before that leaves
   the mark, and the service fills them again when it starts, before it adds anything to them; until then
   figures are read from the daily read models), then prints a summary; the service's projector, once
   started, goes on from there.

A partition's *origin* is an offset the log of this deployment starts at (rows of the consumer
``<group>#origin`` in ``consumer_offsets``: the last offset *before* the origin). Without one, a partition
is replayed from its first record the broker still holds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.contracts.topics import consumer_group
from mpp.kit.consumer import BatchHandler, EventConsumer
from mpp.kit.db import create_engine, session_factory
from mpp.kit.kafka import KafkaSecurity, create_producer, ensure_topics, stop_consumer, topic_partitions
from mpp.kit.migrations import upgrade
from mpp.reporting.config import ReportingSettings
from mpp.reporting.domain.facts import FACT_TYPES
from mpp.reporting.domain.projection import PROJECTED_TYPES
from mpp.reporting.persistence.projector_lock import ProjectorLock
from mpp.reporting.persistence.repository import fill_pending_rollups_concurrently
from mpp.reporting.persistence.tables import consumer_offsets, inbox, read_models, rollups_pending
from mpp.reporting.projection_metrics import ProjectionMetrics

ORIGIN_SUFFIX = "#origin"


class RebuildRefused(RuntimeError):
    """The rebuild cannot start (a projector is running); the message says what to do."""


@dataclass
class RebuildSummary:
    partitions: int = 0
    records_total: int = 0
    records_read: int = 0
    events_applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    rollups_seconds: float | None = None
    """Time to fill the roll-ups at the end (PostgreSQL), part of ``seconds``."""
    rows: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rate = self.records_read / self.seconds if self.seconds > 0 else 0.0
        out = [
            f"rebuild finished in {self.seconds:,.1f} s: {self.records_read:,} records read from "
            f"{self.partitions} partitions ({rate:,.0f} records/s)",
            f"  events applied: {self.events_applied:,}; duplicates skipped: {self.duplicates:,}; "
            f"dead-lettered: {self.dead_lettered:,}; not projected (other types, skipped offsets): "
            f"{self.records_read - self.events_applied - self.duplicates - self.dead_lettered:,}",
        ]
        if self.rollups_seconds is not None:
            out.append(f"  roll-ups filled from the daily read models in {self.rollups_seconds:,.1f} s")
        out += [f"  {name}: {count:,} rows" for name, count in self.rows.items()]
        return out


class Progress:
    """Progress lines on stderr: records read, events applied, rate, remaining lag, time left."""

    def __init__(self, out: TextIO, every_s: float) -> None:
        self.out = out
        self.every_s = every_s
        self.started = time.monotonic()
        self.last = 0.0

    def show(
        self,
        *,
        read: int,
        total: int,
        applied: int,
        remaining: dict[TopicPartition, int],
        force: bool = False,
    ) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = read / elapsed
        left = sum(remaining.values())
        eta = f"{left / rate:,.0f} s" if rate > 0 else "unknown"
        behind = sorted(((n, tp) for tp, n in remaining.items() if n > 0), reverse=True)
        worst = ", ".join(f"{tp.topic}[{tp.partition}] {n:,}" for n, tp in behind[:3])
        pct = 100.0 * read / total if total else 100.0
        self.out.write(
            f"rebuild: {read:,}/{total:,} records ({pct:.1f}%), {applied:,} events applied, "
            f"{rate:,.0f} records/s, lag {left:,} in {len(behind)} partitions"
            f"{' (' + worst + ')' if worst else ''}, about {eta} left\n"
        )
        self.out.flush()


async def _stored(engine: AsyncEngine, consumer: str) -> dict[TopicPartition, int]:
    t = consumer_offsets
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(t.c.topic, t.c.partition, t.c.offset).where(t.c.consumer == consumer))
        ).all()
    return {TopicPartition(r.topic, r.partition): int(r.offset) for r in rows}


async def _reset(engine: AsyncEngine, group: str, starts: dict[TopicPartition, int]) -> None:
    """Empty the read models, the group's inbox and offsets; a partition with an origin keeps it."""
    async with engine.begin() as conn:
        tables = read_models()
        if conn.dialect.name == "postgresql":
            # Table names come from this package's own metadata, never from input.
            await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)}"))
        else:
            for table in reversed(tables):
                await conn.execute(delete(table))
        if conn.dialect.name == "postgresql":
            # The batches write the daily read models only; the roll-ups are filled from them at the end.
            await conn.execute(insert(rollups_pending).values(since=datetime.now(UTC)))
        await conn.execute(delete(inbox).where(inbox.c.consumer == group))
        await conn.execute(delete(consumer_offsets).where(consumer_offsets.c.consumer == group))
        rows = [
            {"consumer": group, "topic": tp.topic, "partition": tp.partition, "offset": start - 1}
            for tp, start in starts.items()
            if start > 0
        ]
        if rows:
            await conn.execute(insert(consumer_offsets), rows)


async def _fill_rollups(engine: AsyncEngine) -> float | None:
    """Fill the roll-ups from the replayed daily read models, on a few connections at once (see
    :func:`~mpp.reporting.persistence.repository.fill_pending_rollups_concurrently`); the seconds it took,
    None when they were kept batch by batch (SQLite)."""
    started = time.monotonic()
    filled = await fill_pending_rollups_concurrently(session_factory(engine))
    return time.monotonic() - started if filled else None


async def _row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in read_models()
        }


@dataclass
class _Plan:
    partitions: list[TopicPartition]
    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]

    @property
    def todo(self) -> dict[TopicPartition, int]:
        return {tp: self.starts[tp] for tp in self.partitions if self.starts[tp] < self.ends[tp]}


async def _plan(
    kafka: AIOKafkaConsumer, engine: AsyncEngine, settings: ReportingSettings, topics: list[str]
) -> _Plan:
    security = KafkaSecurity.from_settings(settings)
    bootstrap = settings.kafka_bootstrap_servers
    tps = [tp for topic in topics for tp in await topic_partitions(bootstrap, topic, security=security)]
    firsts = await kafka.beginning_offsets(tps)
    ends = await kafka.end_offsets(tps)
    origins = await _stored(engine, settings.consumer_group + ORIGIN_SUFFIX)
    starts = {tp: max(firsts[tp], origins.get(tp, -1) + 1) for tp in tps}
    return _Plan(tps, starts, dict(ends))


async def _replay(
    kafka: AIOKafkaConsumer,
    consumer: EventConsumer,
    plan: _Plan,
    summary: RebuildSummary,
    progress: Progress,
    metrics: ProjectionMetrics | None,
    max_records: int,
) -> None:
    todo = plan.todo
    ends = plan.ends
    if todo:
        kafka.assign(list(todo))
        for tp, start in todo.items():
            kafka.seek(tp, start)
    remaining = {tp: ends[tp] - start for tp, start in todo.items()}

    def upto_ends(fetched: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[Any]]:
        # Records after the noted end are the service's to apply.
        batches = {tp: [r for r in records if r.offset < ends[tp]] for tp, records in fetched.items()}
        batches = {tp: records for tp, records in batches.items() if records}
        summary.records_read += sum(len(records) for records in batches.values())
        return batches

    async def more(room: int, wait: bool) -> dict[TopicPartition, list[Any]]:
        # While the previous batch is written, what arrives meanwhile joins the next one.
        return upto_ends(await kafka.getmany(timeout_ms=10 if wait else 0, max_records=room))

    try:
        while any(n > 0 for n in remaining.values()):
            batches = upto_ends(await kafka.getmany(timeout_ms=500, max_records=max_records))
            if batches:
                # Read and folded while the previous batch is written; written once that one has committed.
                await consumer.submit(batches, more=more)
            for tp in [tp for tp, n in remaining.items() if n > 0]:
                remaining[tp] = max(0, ends[tp] - await kafka.position(tp))
                if remaining[tp] == 0:
                    kafka.pause(tp)
            if metrics is not None and summary.records_total:
                done = summary.records_total - sum(remaining.values())
                metrics.rebuild_records_read.set(done)
                metrics.rebuild_progress.set(done / summary.records_total)
            progress.show(
                read=summary.records_read,
                total=summary.records_total,
                applied=consumer.processed,
                remaining=remaining,
            )
        await consumer.drain()
    except BaseException:
        consumer.abandon()  # the batch in the database, if any, is rolled back
        raise
    progress.show(
        read=summary.records_read,
        total=summary.records_total,
        applied=consumer.processed,
        remaining=remaining,
        force=True,
    )


async def rebuild(
    settings: ReportingSettings,
    handler_for: Callable[[ProjectionMetrics | None], BatchHandler],
    *,
    out: TextIO = sys.stderr,
    metrics: ProjectionMetrics | None = None,
    max_records: int = 50_000,
    progress_every_s: float = 1.0,
) -> RebuildSummary:
    """Empty the read models and replay every projected topic into them; see the module's description."""
    from mpp.reporting.app import MIGRATIONS, PROJECTOR_GROUP  # the composition root imports this module

    group = settings.consumer_group
    engine = create_engine(settings.database_url)
    lock = ProjectorLock(engine, exclusive=True)
    summary = RebuildSummary()
    started = time.monotonic()
    try:
        if not await lock.acquire():
            raise RebuildRefused(
                "the reporting projector is running on this database: stop the service (or run it with "
                "MPP_REPORTING_CONSUMER_ENABLED=false to keep serving figures) and start the rebuild again"
            )
        await upgrade(engine, MIGRATIONS)
        bootstrap = settings.kafka_bootstrap_servers
        security = KafkaSecurity.from_settings(settings)
        topics = list(consumer_group(PROJECTOR_GROUP).topics)
        if settings.kafka_create_topics:  # as the service does at startup (the dead-letter topic, say)
            replication = settings.kafka_replication_factor
            await ensure_topics(bootstrap, replication_factor=replication, security=security)
        kafka = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **security.options(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_min_bytes=64 * 1024,
            fetch_max_wait_ms=200,
        )
        producer = create_producer(bootstrap, client_id=f"{group}-rebuild", security=security)
        await kafka.start()
        await producer.start()
        try:
            plan = await _plan(kafka, engine, settings, topics)
            summary.partitions = len(plan.partitions)
            summary.records_total = sum(plan.ends[tp] - start for tp, start in plan.todo.items())
            await _reset(engine, group, plan.starts)
            if metrics is not None:
                metrics.rebuild_records_total.set(summary.records_total)
                metrics.rebuild_records_read.set(0)
                metrics.rebuild_progress.set(0.0 if summary.records_total else 1.0)
            consumer = EventConsumer(
                group_id=group,
                topics=topics,
                bootstrap=bootstrap,
                sessions=session_factory(engine),
                inbox=inbox,
                offsets=consumer_offsets,
                handler=handler_for(metrics),
                producer=producer,
                max_records=max_records,
                event_types=PROJECTED_TYPES | FACT_TYPES,
                offsets_from_database_only=True,
                security=security,
                pipelined=True,
            )
            consumer.attach(kafka)
            progress = Progress(out, progress_every_s)
            await _replay(kafka, consumer, plan, summary, progress, metrics, max_records)
            summary.rollups_seconds = await _fill_rollups(engine)
            summary.events_applied = consumer.processed
            summary.duplicates = consumer.duplicates
            summary.dead_lettered = consumer.dead_lettered
        finally:
            await stop_consumer(kafka)
            await producer.stop()
        summary.rows = await _row_counts(engine)
        summary.seconds = time.monotonic() - started
        for line in summary.lines():
            out.write(line + "\n")
        out.flush()
        return summary
    finally:
        await lock.release()
        await engine.dispose()
