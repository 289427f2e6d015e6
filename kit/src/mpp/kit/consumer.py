"""Reliable batch consumption: inbox, consumed offsets and effects in one transaction.

For each batch fetched from Kafka:

1. every record is parsed through the contracts; records that are not valid events (malformed,
   unknown type or version) go to the group's dead-letter topic at once, with the reason in headers;
2. in one database transaction, the batch's event ids are claimed in the inbox (duplicates are
   skipped), the handler applies the effects of the new events, and the consumed offsets are stored;
3. only then are the offsets committed to Kafka.

A handler error that is deterministic (a bug, a bad value) is isolated by replaying the batch one
event at a time; the failing event goes to the dead-letter topic and the others are applied.
Transient errors (the database or the broker unavailable) are retried with backoff and never
dead-lettered: the consumer pauses its partitions while it waits, keeping its group membership.

A consumer built with ``pipelined=True`` overlaps a batch's Python work with the previous batch's
database work (pipeline depth 1): while batch N's transaction runs in the database, batch N+1 is fetched
(up to ``max_records``), parsed and, with a :class:`TwoPhaseHandler`, prepared; N+1's transaction starts
once N's has committed, so its inbox claim sees N's event ids. Partitions revoked meanwhile are dropped
from the batch not yet started (their next owner reads them again from the stored offsets), and the
batch in the database is finished before the revocation completes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from opentelemetry import trace
from sqlalchemy import Table, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.envelope import Envelope, UnknownEventType, registered_events
from mpp.contracts.kafka import MalformedEvent, from_record, header_map
from mpp.kit import collector
from mpp.kit.db import dialect_insert, is_transient
from mpp.kit.kafka import PLAINTEXT, KafkaSecurity
from mpp.kit.observability import ServiceMetrics, context_from_traceparent

MAX_SPAN_LINKS = 128

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("mpp.kit.consumer")

DLQ_PREFIX = "dlq_"
INBOX_PURGE_INTERVAL_S = 600


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An event as consumed: the envelope and where it was read from."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    raw: Any = None


BatchHandler = Callable[[AsyncSession, Sequence[ReceivedEvent]], Awaitable[None]]
"""Applies the effects of a batch of new events inside the consumer's transaction. Never commits."""

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class TwoPhaseHandler(Generic[P]):
    """A batch handler in two steps, so that a pipelined consumer prepares a batch while the previous
    one is being written:

    * ``prepare(events, into)`` folds events into a prepared value and returns it: pure computation, no
      database and no I/O. ``into`` is none for a batch's first events, then what the previous call
      returned: a batch is prepared a chunk at a time, in order.
    * ``apply(session, prepared)`` writes a prepared batch inside the consumer's transaction. It must not
      change ``prepared``: an attempt that is rolled back (a transient error) is applied again.

    The consumer applies what it prepared only when every prepared event is new; otherwise (duplicates,
    a batch replayed event by event) it prepares the new events again. Called like a :data:`BatchHandler`,
    it does both steps at once.
    """

    prepare: Callable[[Sequence[ReceivedEvent], P | None], P]
    apply: Callable[[AsyncSession, P], Awaitable[None]]

    async def __call__(self, session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        await self.apply(session, self.prepare(events, None))


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._owner._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._owner._on_assigned(list(assigned))


def dead_letter_headers(
    record: Any, *, group_id: str, reason: str, error: str, attempts: int
) -> list[tuple[str, bytes]]:
    """The original headers plus the reason a record was dead-lettered."""
    original = [(k, v) for k, v in (record.headers or []) if not k.startswith(DLQ_PREFIX)]
    return [
        *original,
        ("dlq_origin_topic", record.topic.encode()),
        ("dlq_origin_partition", str(record.partition).encode()),
        ("dlq_origin_offset", str(record.offset).encode()),
        ("dlq_consumer_group", group_id.encode()),
        ("dlq_reason", reason.encode()),
        ("dlq_error", error[:2000].encode("utf-8", "replace")),
        ("dlq_attempts", str(attempts).encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]


_TOP_UP_FETCHES = 32
"""At most this many extra fetches of already buffered records per batch."""

_YIELD_EVERY = 100
"""A pipelined consumer lets the event loop run after this many records read (and prepared), so the
transaction of the batch in the database sends its next statement promptly (about 2 ms of reading)."""

_FETCH_STEP = 500
"""A pipelined consumer takes at most this many records per fetch call: the client decodes what it
hands over in one go, without letting the loop run (about 2.5 µs a record)."""

_WAIT_MS = 10
"""How long one fetch waits for more records while the previous batch is still in the database."""

_REVOCATIONS_KEPT = 64

_FREE_EVERY = 2000
"""Events freed between two turns of the event loop (see :meth:`EventConsumer._free_later`)."""


async def _free(dropped: list[Any]) -> None:
    events, ids = dropped[0], dropped[1]
    ids.clear()  # its events stay referenced by the list until their slice
    while events:
        del events[-_FREE_EVERY:]
        await asyncio.sleep(0)
    dropped.clear()


@dataclass(slots=True)
class _Batch:
    """A batch being read (and prepared), then applied."""

    started: float
    events: list[ReceivedEvent] = field(default_factory=list)
    poison: list[tuple[Any, str, str]] = field(default_factory=list)
    last: dict[TopicPartition, int] = field(default_factory=dict)
    records: int = 0
    prepare: bool = False
    """Whether the handler's ``prepare`` runs as the batch is read (a pipelined two-phase handler)."""
    prepared: Any = None
    ids: dict[str, ReceivedEvent] = field(default_factory=dict)
    """The batch's events by id, the first of each id, in order: what its inbox claim records, and the
    events ``prepared`` holds (when it is not ``stale``)."""
    stale: bool = False
    """Events were dropped after being prepared: the new events are prepared again when applied."""
    topics: Counter[str] = field(default_factory=Counter)
    """Events per topic, counted when the batch is applied (for the metrics)."""
    held: bool = False
    """Whether the batch keeps the collector off (from its parse to the end of its apply)."""

    def hold(self) -> None:
        if not self.held:
            self.held = True
            collector.hold()

    def release(self) -> None:
        """Give the collector back (once per batch, whatever happened to it)."""
        if self.held:
            self.held = False
            collector.release()

    def applied(self, count_topics: bool) -> list[Any]:
        """The batch is in the database: its events and what was prepared from them leave it (what is
        left, the offsets, is committed after), then it gives the collector back. Answers what left, for
        the caller to free (see :meth:`EventConsumer._free_later`)."""
        if count_topics:
            self.topics = Counter(ev.topic for ev in self.events)
        dropped = [self.events, self.ids, self.prepared, self.poison]
        self.events = []
        self.poison = []
        self.prepared = None
        self.ids = {}
        self.release()
        return dropped

    def drop(self, partitions: set[TopicPartition]) -> None:
        """Leave out everything read from ``partitions`` (revoked before the batch was applied)."""
        kept = [ev for ev in self.events if TopicPartition(ev.topic, ev.partition) not in partitions]
        if len(kept) != len(self.events):
            self.events = kept
            self.stale = True
            self.prepared = None
            ids: dict[str, ReceivedEvent] = {}
            for ev in kept:
                ids.setdefault(str(ev.envelope.id), ev)
            self.ids = ids
        self.poison = [p for p in self.poison if TopicPartition(p[0].topic, p[0].partition) not in partitions]
        # A new dict: an attempt already running keeps the offsets it started with.
        self.last = {tp: offset for tp, offset in self.last.items() if tp not in partitions}

    @property
    def empty(self) -> bool:
        return not (self.events or self.poison or self.last)


@dataclass(slots=True)
class _Flight:
    """A batch whose transaction is running, and the span it runs in."""

    batch: _Batch
    task: asyncio.Task[None]
    span: Any


class EventConsumer:
    """One consumer group member that applies events exactly once to the service's database."""

    def __init__(
        self,
        *,
        group_id: str,
        topics: Sequence[str],
        bootstrap: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: Table,
        offsets: Table,
        handler: BatchHandler,
        producer: AIOKafkaProducer,
        metrics: ServiceMetrics | None = None,
        max_records: int = 2000,
        max_attempts: int = 3,
        dead_letter_topic: str | None = None,
        client_id: str | None = None,
        max_backoff_s: float = 5.0,
        event_types: frozenset[str] | None = None,
        offsets_from_database_only: bool = False,
        inbox_retention: timedelta = timedelta(days=30),
        security: KafkaSecurity = PLAINTEXT,
        pipelined: bool = False,
        revoke_wait_s: float = 30.0,
    ) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self._bootstrap = bootstrap
        self._sessions = sessions
        self._inbox = inbox
        self._offsets = offsets
        self._handler = handler
        self._two_phase: TwoPhaseHandler[Any] | None = (
            handler if isinstance(handler, TwoPhaseHandler) else None
        )
        self._producer = producer
        self._metrics = metrics
        self._max_records = max_records
        self._max_attempts = max_attempts
        self.dead_letter_topic = dead_letter_topic or f"{group_id}.dlq"
        self._client_id = client_id or group_id
        self._max_backoff = max_backoff_s
        self._event_types = event_types
        self._event_types_set: frozenset[str] = event_types or frozenset()
        self._known_types = frozenset(c.event_type for c in registered_events(include_external=True))
        # A projection's database is the source of truth for what it has consumed: when it has no offset
        # for a partition (a new or dropped read model) it starts from the beginning of the log rather than
        # from the group's last Kafka commit.
        self._db_only = offsets_from_database_only
        # Duplicates come from producer retries and relay restarts, minutes apart at most; event ids
        # older than this no longer need remembering.
        self._inbox_retention = inbox_retention
        self._security = security
        self._last_purge = time.monotonic()
        # Answers how many ids it claimed, rather than the thousands claimed: all of them, usually.
        self._claim_text = text(
            f"WITH claimed AS (INSERT INTO {inbox.name} (consumer, event_id, processed_at) "  # noqa: S608
            "SELECT :consumer, event_id, :now "
            "FROM unnest(CAST(CAST(:ids AS text) AS uuid[])) AS ids(event_id) ORDER BY event_id "
            "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM claimed"
        )
        # When some were not claimed (duplicates): those of the ids the inbox held before this transaction
        # (its own rows carry its transaction id).
        self._held_text = text(
            f"SELECT CAST(event_id AS text) FROM {inbox.name} WHERE consumer = :consumer "  # noqa: S608
            "AND event_id = ANY(CAST(CAST(:ids AS text) AS uuid[])) AND xmin <> pg_current_xact_id()::xid"
        )
        self._upserts: dict[str, Any] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._stored: dict[TopicPartition, int] = {}
        # Partitions whose stored offset has been read from the database since they were assigned.
        self._floors_loaded: set[TopicPartition] = set()
        self._pipelined = pipelined
        # How long a revocation waits for the batch in the database to commit (its effects and offsets
        # are then there for the partitions' next owner).
        self._revoke_wait_s = revoke_wait_s
        # Incremented by every revocation; the partitions each one took, newest last.
        self._epoch = 0
        self._revocations: deque[tuple[int, frozenset[TopicPartition]]] = deque(maxlen=_REVOCATIONS_KEPT)
        self._reading: _Batch | None = None
        self._freeing: set[asyncio.Task[None]] = set()
        self._inflight: _Flight | None = None
        self._retried: _Batch | None = None
        """A batch whose transaction failed and is being tried again (see :meth:`_on_revoked`)."""
        self.paused = False
        self.processed = 0
        self.dead_lettered = 0
        self.duplicates = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **self._security.options(),
            group_id=self.group_id,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=300_000,
            session_timeout_ms=20_000,
            heartbeat_interval_ms=3_000,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_Rebalance(self))

    def attach(self, consumer: AIOKafkaConsumer) -> None:
        """Use a Kafka consumer the caller manages (partitions assigned, no group) instead of ``start``:
        a replay fetches its own batches and hands them to :meth:`process`, which applies them with the
        same inbox, offsets, dead letters and retries."""
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("consumer not started")
        return self._consumer

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in flight is finished and committed first."""
        last_lag = 0.0
        try:
            while not stop.is_set():
                try:
                    batches = await self.consumer.getmany(
                        timeout_ms=200, max_records=_FETCH_STEP if self._pipelined else self._max_records
                    )
                    if batches and not self._pipelined:
                        batches = await self._top_up(batches)
                except KafkaError as exc:
                    log.warning(
                        "kit.consumer.fetch_failed", extra={"group": self.group_id, "error": repr(exc)}
                    )
                    await asyncio.sleep(0.5)
                    continue
                if batches:
                    # Pipelined, the batch also takes what arrives while the previous one is written.
                    await self.submit(batches, more=self._fetch_more if self._pipelined else None)
                else:
                    await self.drain()
                if self._metrics is not None and time.monotonic() - last_lag > 2:
                    last_lag = time.monotonic()
                    self._export_lag()
                if time.monotonic() - self._last_purge > INBOX_PURGE_INTERVAL_S:
                    self._last_purge = time.monotonic()
                    await self.purge_inbox()
            await self.drain()
        except BaseException:
            self.abandon()
            raise

    async def _fetch_more(self, room: int, wait: bool) -> dict[TopicPartition, list[Any]]:
        try:
            fetched: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
                timeout_ms=_WAIT_MS if wait else 0, max_records=room
            )
        except KafkaError as exc:
            log.warning("kit.consumer.fetch_failed", extra={"group": self.group_id, "error": repr(exc)})
            return {}
        return fetched

    async def _top_up(self, batches: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[Any]]:
        """Add the records already fetched, up to ``max_records``. One fetch returns what one broker
        response held (a few hundred records of a backlog); a batch's transaction costs about the same
        for many more, so catching up (a rebuild, after an outage) goes faster. Never waits."""
        count = sum(len(records) for records in batches.values())
        for _ in range(_TOP_UP_FETCHES):
            if count >= self._max_records:
                break
            more = await self.consumer.getmany(timeout_ms=0, max_records=self._max_records - count)
            if not more:
                break
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
        return batches

    async def purge_inbox(self) -> int:
        """Forget processed event ids older than the retention; returns how many were removed."""
        cutoff = datetime.now(UTC) - self._inbox_retention
        t = self._inbox
        try:
            async with self._sessions() as session, session.begin():
                result = await session.execute(
                    delete(t).where(t.c.consumer == self.group_id, t.c.processed_at < cutoff)
                )
        except Exception as exc:
            if not is_transient(exc):
                raise
            return 0
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- processing ----------------------------------------------------------------------------

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Apply one fetched batch and commit its offsets (waiting for any batch still in flight)."""
        await self.submit(batches)
        await self.drain()

    async def submit(
        self,
        batches: dict[TopicPartition, list[Any]],
        more: Callable[[int, bool], Awaitable[dict[TopicPartition, list[Any]]]] | None = None,
    ) -> None:
        """Read a fetched batch and apply it. Without the pipeline it is applied and committed before
        this returns. With it, this reads the batch (and prepares it) while the previous one is still in
        the database, then waits for that one to commit, starts this one's transaction and returns:
        :meth:`drain` waits for it. ``more(room, wait)`` fetches records to add to the batch, up to
        ``room``; ``wait`` says the previous batch is still running (a short wait for records is free).

        The collector stays off from the batch's parse to the end of its apply (:func:`mpp.kit.collector.paused`)."""
        batch = _Batch(time.perf_counter(), prepare=self._pipelined and self._two_phase is not None)
        batch.hold()
        self._reading = batch
        try:
            await self._extend(batch, batches, self._epoch)
            if more is not None:
                await self._grow(batch, more)
            if self._pipelined:
                # Batches apply one after the other: this one's inbox claim must see the previous one's ids.
                await self._settle()
                await self._send_dead_letters(batch)
        except BaseException:
            batch.release()
            raise
        finally:
            self._reading = None
        if not self._pipelined:
            await self._finish(batch)
        elif batch.empty:
            batch.release()
        else:
            self._start(batch)
            # The transaction's first statement goes out before this task goes on (its next fetch
            # decodes thousands of records without a pause).
            await asyncio.sleep(0)

    async def drain(self) -> None:
        """Wait for the batch in flight (pipelined) to commit, retrying it through transient errors."""
        await self._settle()

    async def _grow(
        self,
        batch: _Batch,
        more: Callable[[int, bool], Awaitable[dict[TopicPartition, list[Any]]]],
    ) -> None:
        """Add records to the batch, up to ``max_records``: while the previous batch is still in the
        database, whatever arrives meanwhile; once it has committed, nothing more (the database waits for
        this one); with no previous batch, those already fetched (a few fetches, never waiting)."""
        extra = 0
        # A previous batch in the database (or just committed, not yet settled): once it has committed,
        # it waits for this one.
        behind = self._inflight is not None
        while batch.records < self._max_records:
            waiting = self._inflight is not None and not self._inflight.task.done()
            if not waiting and (behind or extra >= _TOP_UP_FETCHES):
                break
            fetched = await more(min(self._max_records - batch.records, _FETCH_STEP), waiting)
            if fetched:
                # Records a fetch returns belong to the assignment of its return (the Kafka client
                # drops what it had fetched for partitions since revoked).
                await self._extend(batch, fetched, self._epoch)
            elif not waiting:
                break
            if not waiting:
                extra += 1

    def _revoked_since(self, epoch: int) -> set[TopicPartition] | None:
        """The partitions revoked after ``epoch``; none when that is too long ago to know (all of them)."""
        if self._epoch == epoch:
            return set()
        if not self._revocations or self._revocations[0][0] > epoch + 1:
            return None
        return {tp for n, tps in self._revocations if n > epoch for tp in tps}

    async def _extend(self, batch: _Batch, fetched: dict[TopicPartition, list[Any]], epoch: int) -> None:
        """Parse fetched records into the batch (and prepare them); ``epoch`` is the revocation count when
        they were fetched: records of partitions revoked since are left out."""
        if any(tp not in self._floors_loaded for tp in fetched):
            # Records can arrive before the rebalance listener has sought to the stored offsets: read
            # them first, so nothing at or below the database's offset is applied again.
            await self._retrying(functools.partial(self._load_floors, list(fetched)))
        pipelined = self._pipelined
        chunk: list[ReceivedEvent] = []
        read = 0
        for tp, records in fetched.items():
            gone = self._revoked_since(epoch)
            if gone is None or tp in gone:
                continue
            floor = self._stored.get(tp, -1)
            for record in records:
                if pipelined and read >= _YIELD_EVERY:
                    read = 0
                    self._prepare_chunk(batch, chunk)
                    chunk = []
                    await asyncio.sleep(0)
                    gone = self._revoked_since(epoch)
                    if gone is None or tp in gone:
                        break
                read += 1
                batch.records += 1
                batch.last[tp] = record.offset
                if record.offset <= floor:
                    continue
                parsed = self._read(record)
                if isinstance(parsed, ReceivedEvent):
                    batch.events.append(parsed)
                    chunk.append(parsed)
                elif parsed is not None:
                    batch.poison.append(parsed)
        self._prepare_chunk(batch, chunk)

    def _prepare_chunk(self, batch: _Batch, chunk: list[ReceivedEvent]) -> None:
        """Note the chunk's events by id (for the batch's inbox claim, outside its transaction) and, for
        a pipelined two-phase handler, prepare the new ones."""
        if not chunk:
            return
        ids = batch.ids
        new = []
        for ev in chunk:
            eid = str(ev.envelope.id)
            if eid not in ids:  # a second copy in the same batch: the first one counts
                ids[eid] = ev
                new.append(ev)
        if not new or not batch.prepare or batch.stale or self._two_phase is None:
            return
        try:
            batch.prepared = self._two_phase.prepare(new, batch.prepared)
        except Exception as exc:
            # Prepared again with the batch's transaction, where a handler error is isolated to its event.
            log.warning(
                "kit.consumer.prepare_failed", extra={"group": self.group_id, "error": type(exc).__name__}
            )
            batch.stale = True
            batch.prepared = None

    async def _send_dead_letters(self, batch: _Batch) -> None:
        for record, reason, error in batch.poison:
            await self._retrying(functools.partial(self._dead_letter, record, reason, error, 1))
        batch.poison = []

    async def _finish(self, batch: _Batch) -> None:
        """Apply a batch now: dead letters, the transaction (retried), the offsets."""
        try:
            await self._send_dead_letters(batch)
            if batch.events or batch.last:
                self._retried = batch
                with self._batch_span(batch.events):
                    await self._retrying(lambda: self._apply(batch))
            batch.applied(self._metrics is not None)
        finally:
            self._retried = None
            batch.release()
        await self._done(batch)

    def _start(self, batch: _Batch) -> None:
        """Start a batch's transaction in the background; :meth:`_settle` waits for it."""
        span = self._start_span(batch.events)
        count_topics = self._metrics is not None

        async def attempt() -> None:
            with trace.use_span(span, end_on_exit=False):
                await self._apply(batch)
            # Committed: the collector comes back (once no other batch holds it) without its events.
            self._free_later(batch.applied(count_topics))

        task = asyncio.create_task(attempt(), name=f"{self.group_id} batch")
        self._inflight = _Flight(batch, task, span)

    async def _settle(self) -> None:
        """Wait for the batch in flight to commit (retrying transient errors with the partitions
        paused, as :meth:`_finish` does), then commit its offsets to Kafka."""
        flight = self._inflight
        if flight is None:
            return
        try:
            try:
                await asyncio.shield(flight.task)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._retried = flight.batch
                with trace.use_span(flight.span, end_on_exit=False):
                    await self._retrying(lambda: self._apply(flight.batch), failed=exc)
                self._free_later(flight.batch.applied(self._metrics is not None))
        finally:
            self._retried = None
            if flight.task.done():
                self._inflight = None
                flight.span.end()
                flight.batch.release()
        await self._done(flight.batch)

    def _free_later(self, dropped: list[Any]) -> None:
        """Free an applied batch's events (``dropped``, from :meth:`_Batch.applied`) a slice at a time in
        a task of its own. Freed at once, 50,000 events hold the loop for about 0.15 s between one batch's
        commit and the next one's first statement, with the database idle."""
        task = asyncio.create_task(_free(dropped), name=f"{self.group_id} free")
        self._freeing.add(task)
        task.add_done_callback(self._freeing.discard)

    def abandon(self) -> None:
        """Stop without finishing (cancelled, or a fatal error): a pipelined batch still in the database
        is rolled back; its records are read again from the stored offsets next time."""
        flight, self._inflight = self._inflight, None
        if flight is not None:
            flight.task.cancel()
            flight.span.end()
            flight.batch.release()

    async def _done(self, batch: _Batch) -> None:
        for tp, offset in batch.last.items():
            self._stored[tp] = max(self._stored.get(tp, -1), offset)
        await self._commit(batch.last)
        if self._metrics is not None:
            self._metrics.consumer_batch_seconds.labels(group=self.group_id).observe(
                time.perf_counter() - batch.started
            )
            for topic, n in batch.topics.items():
                self._metrics.events_consumed_total.labels(group=self.group_id, topic=topic).inc(n)

    def _read(self, record: Any) -> ReceivedEvent | tuple[Any, str, str] | None:
        """The event a record holds, the reason it is poison, or none when this consumer skips it."""
        if self._event_types is not None and self._not_handled(record.headers):
            return None
        try:
            envelope = from_record(record.value, record.headers or ())
        except UnknownEventType as exc:
            return (record, "unknown_type", str(exc))
        except MalformedEvent as exc:
            return (record, "malformed", str(exc))
        if self._event_types is not None and envelope.type not in self._event_types:
            return None
        return ReceivedEvent(envelope, record.topic, record.partition, record.offset, record)

    def _not_handled(self, headers: Any) -> bool:
        """A record of a known event type this consumer does not handle, read from its ``ce_type`` header
        without parsing it: on topics shared by many types (a projection reads a few of them) parsing
        the rest would cost most of the batch. Unknown type names are still parsed and dead-lettered."""
        for key, value in headers or ():
            if key == "ce_type":
                name = (value or b"").decode("utf-8", "replace")
                return name not in self._event_types_set and name in self._known_types
        return False

    def _batch_span(self, events: Sequence[ReceivedEvent]) -> Any:
        """One span per batch, linked to the producing span of (up to 128 of) its events."""
        return trace.use_span(self._start_span(events), end_on_exit=True)

    def _start_span(self, events: Sequence[ReceivedEvent]) -> Any:
        links = []
        for ev in events[:MAX_SPAN_LINKS]:
            span_context = trace.get_current_span(
                context_from_traceparent(ev.envelope.traceparent)
            ).get_span_context()
            if span_context.is_valid:
                links.append(trace.Link(span_context))
        return _tracer.start_span(
            f"{self.group_id} process",
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.consumer.group.name": self.group_id,
                "messaging.batch.message_count": len(events),
            },
        )

    async def _apply(self, batch: _Batch) -> None:
        events, last = batch.events, batch.last
        try:
            async with self._sessions() as session, session.begin():
                fresh = await self._claim(session, events, batch.ids)
                if fresh:
                    if (
                        self._two_phase is not None
                        and batch.prepared is not None
                        and len(fresh) == len(batch.ids)
                    ):
                        # Every prepared event is new (the claimed ones are among them).
                        await self._two_phase.apply(session, batch.prepared)
                    else:
                        await self._handler(session, fresh)
                await self._store_offsets(session, last)
            self.processed += len(fresh)
        except Exception as exc:
            if is_transient(exc) or len(events) == 0:
                raise
            log.warning(
                "kit.consumer.batch_failed_isolating",
                extra={"group": self.group_id, "events": len(events), "error": type(exc).__name__},
            )
            await self._apply_one_by_one(events, last)

    async def _apply_one_by_one(
        self, events: Sequence[ReceivedEvent], last: dict[TopicPartition, int]
    ) -> None:
        for ev in events:
            error: Exception | None = None
            for _attempt in range(self._max_attempts):
                try:
                    async with self._sessions() as session, session.begin():
                        fresh = await self._claim(session, [ev])
                        if fresh:
                            await self._handler(session, fresh)
                    self.processed += len(fresh)
                    error = None
                    break
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    error = exc
            if error is not None:
                await self._dead_letter(
                    ev.raw, "handler_error", f"{type(error).__name__}: {error}", self._max_attempts
                )
        async with self._sessions() as session, session.begin():
            await self._store_offsets(session, last)

    async def _claim(
        self,
        session: AsyncSession,
        events: Sequence[ReceivedEvent],
        unique: dict[str, ReceivedEvent] | None = None,
    ) -> list[ReceivedEvent]:
        """Record the events' ids in the inbox and return the events not seen before, in order.
        ``unique``: the events by id, the first of each, in order, when the caller has them already."""
        if not events:
            return []
        if unique is None:
            unique = {}
            for ev in events:
                unique.setdefault(str(ev.envelope.id), ev)
        now = datetime.now(UTC)
        if session.get_bind().dialect.name == "postgresql":
            # One statement with one array parameter, sent as an array literal (event ids are UUIDs:
            # nothing to quote): compiling a multi-row VALUES list, or binding a list element by element,
            # costs more than the insert itself.
            ids = "{" + ",".join(unique) + "}"
            claimed = await session.scalar(
                self._claim_text, {"consumer": self.group_id, "ids": ids, "now": now}
            )
            if claimed == len(unique):
                fresh = list(unique.values())
            else:
                held = await session.execute(self._held_text, {"consumer": self.group_id, "ids": ids})
                seen = set(held.scalars().all())
                fresh = [ev for eid, ev in unique.items() if eid not in seen]
        else:
            result = await session.execute(
                dialect_insert(session, self._inbox)
                .values([{"consumer": self.group_id, "event_id": eid, "processed_at": now} for eid in unique])
                .on_conflict_do_nothing()
                .returning(self._inbox.c.event_id)
            )
            claimed = set(result.scalars().all())
            fresh = [ev for eid, ev in unique.items() if eid in claimed]
        dup = len(events) - len(fresh)
        if dup:
            self.duplicates += dup
            if self._metrics is not None:
                self._metrics.events_duplicate_total.labels(group=self.group_id).inc(dup)
        return fresh

    async def _store_offsets(self, session: AsyncSession, last: dict[TopicPartition, int]) -> None:
        if not last:
            return
        rows = [
            {"consumer": self.group_id, "topic": tp.topic, "partition": tp.partition, "offset": off}
            for tp, off in last.items()
        ]
        await session.execute(self._offsets_upsert(session), rows[0] if len(rows) == 1 else rows)

    def _offsets_upsert(self, session: AsyncSession) -> Any:
        """The offsets upsert, built once per dialect (it runs with every batch)."""
        dialect = session.get_bind().dialect.name
        stmt = self._upserts.get(dialect)
        if stmt is None:
            table = self._offsets
            insert = dialect_insert(session, table)
            # Never move a stored offset backwards (another member may have gone further during a
            # rebalance).
            stmt = self._upserts[dialect] = insert.on_conflict_do_update(
                index_elements=[table.c.consumer, table.c.topic, table.c.partition],
                set_={"offset": _greatest(session, table.c.offset, insert.excluded.offset)},
            )
        return stmt

    async def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        self._forget(revoked)
        if not revoked:
            return
        self._epoch += 1
        self._revocations.append((self._epoch, frozenset(revoked)))
        if self._reading is not None:
            # Not applied yet: the partitions' next owner reads these records again from the stored offsets.
            self._reading.drop(set(revoked))
        flight = self._inflight
        if flight is not None and not flight.task.done():
            # Already in the database: let it commit, so its offsets are stored for the next owner.
            await asyncio.wait({flight.task}, timeout=self._revoke_wait_s)
        # A batch whose transaction failed (on a transient error) is tried again without the revoked
        # partitions' records: their next owner reads them again from the stored offsets, and applying
        # them here after it had applied later ones would change their order. An attempt already
        # running keeps what it started with (and, committing, stores its offsets).
        for batch in (self._retried, flight.batch if flight is not None and flight.task.done() else None):
            if batch is not None:
                batch.drop(set(revoked))

    def _forget(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self._floors_loaded.discard(tp)
            self._stored.pop(tp, None)

    async def _read_stored(self) -> dict[TopicPartition, int]:
        t = self._offsets
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(t.c.topic, t.c.partition, t.c.offset).where(t.c.consumer == self.group_id)
                )
            ).all()
        return {TopicPartition(r.topic, r.partition): int(r.offset) for r in rows}

    async def _load_floors(self, partitions: list[TopicPartition]) -> None:
        stored = await self._read_stored()
        for tp in partitions:
            if tp in stored:
                self._stored[tp] = max(self._stored.get(tp, -1), stored[tp])
            self._floors_loaded.add(tp)

    async def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        try:
            stored = await self._read_stored()
        except Exception as exc:
            # The first batch loads the offsets itself (retrying) before applying anything.
            log.warning(
                "kit.consumer.offsets_unavailable", extra={"group": self.group_id, "error": repr(exc)}
            )
            return
        from_start = []
        for tp in assigned:
            self._floors_loaded.add(tp)
            if tp in stored:
                self._stored[tp] = stored[tp]
                self.consumer.seek(tp, stored[tp] + 1)
            elif self._db_only:
                self._stored.pop(tp, None)
                from_start.append(tp)
        if from_start:
            await self.consumer.seek_to_beginning(*from_start)

    async def _dead_letter(self, record: Any, reason: str, error: str, attempts: int) -> None:
        headers = dead_letter_headers(
            record, group_id=self.group_id, reason=reason, error=error, attempts=attempts
        )
        fut = await self._producer.send(
            self.dead_letter_topic, value=record.value, key=record.key, headers=headers
        )
        await fut
        self.dead_lettered += 1
        correlation = header_map(record.headers or []).get("ce_correlationid")
        log.warning(
            "kit.consumer.dead_lettered",
            extra={
                "correlation_id": correlation,
                "group": self.group_id,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "error": error[:300],
            },
        )
        if self._metrics is not None:
            self._metrics.dead_letters_total.labels(
                group=self.group_id, topic=record.topic, reason=reason
            ).inc()

    async def _retrying(self, action: Callable[[], Awaitable[None]], failed: Exception | None = None) -> None:
        """Run ``action`` until it succeeds; transient failures pause the partitions meanwhile.
        ``failed``: a first attempt already failed with it (a pipelined batch), so this starts with the
        backoff."""
        backoff = 0.1
        while True:
            error, failed = failed, None
            if error is None:
                try:
                    await action()
                    break
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    error = exc
            self._pause()
            log.warning(
                "kit.consumer.transient_error",
                extra={
                    "group": self.group_id,
                    "error": type(error).__name__,
                    "backoff_s": round(backoff, 2),
                },
            )
            # Polling with every partition paused returns nothing but keeps the group membership alive.
            with collector.running():
                try:
                    await self.consumer.getmany(timeout_ms=int(backoff * 1000))
                except KafkaError:
                    await asyncio.sleep(backoff)
            backoff = min(self._max_backoff, backoff * 2) * random.uniform(0.8, 1.2)
        self._resume()

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.consumer.pause(*self.consumer.assignment())
            if self._metrics is not None:
                self._metrics.consumer_paused.labels(group=self.group_id).set(1)

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            self.consumer.resume(*self.consumer.assignment())
            if self._metrics is not None:
                self._metrics.consumer_paused.labels(group=self.group_id).set(0)

    async def _commit(self, last: dict[TopicPartition, int]) -> None:
        if self._db_only:
            # The database holds the offsets. A Kafka commit could only mislead: records fetched from it
            # before the rebalance listener has sought to the database offsets could be counted past
            # a gap that a crash would then never fill. Without commits a new member starts from the
            # beginning, and the inbox absorbs what it has already seen.
            return
        assigned = self.consumer.assignment()
        offsets = {tp: off + 1 for tp, off in last.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Effects and offsets are already in the database; the next owner seeks past them.
            log.warning("kit.consumer.commit_failed", extra={"group": self.group_id, "error": repr(exc)})

    def _export_lag(self) -> None:
        assert self._metrics is not None
        consumer = self.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = self._stored.get(tp)
            position = (done + 1) if done is not None else 0
            self._metrics.consumer_lag.labels(
                group=self.group_id, topic=tp.topic, partition=str(tp.partition)
            ).set(max(0, high - position))


def _greatest(session: AsyncSession, a: Any, b: Any) -> Any:
    from sqlalchemy import func

    if session.get_bind().dialect.name == "sqlite":
        return func.max(a, b)
    return func.greatest(a, b)
