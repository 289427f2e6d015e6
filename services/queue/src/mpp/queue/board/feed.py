"""The boards of a process: loaded from the database, kept current from the queue's events on Kafka.

Every replica of the queue service reads *all* partitions of ``mpp.queue.visits`` and
``mpp.queue.counters`` itself, so each replica's screens show the calls made on any replica. A consumer
group would share the partitions out between the replicas instead, so this consumer is assigned the
partitions directly (no group membership, no committed offsets) and starts at the end of the log: what
happened before is read from the database, which the outbox makes at least as fresh as the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from types import FrameType
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.envelope import UnknownEventType
from mpp.contracts.kafka import MalformedEvent, from_record
from mpp.contracts.topics import QUEUE_COUNTERS, QUEUE_VISITS
from mpp.kit.kafka import PLAINTEXT, KafkaSecurity, topic_partitions
from mpp.queue.board.state import (
    BOARD_EVENT_TYPES,
    BoardState,
    Change,
    CounterLabel,
    CounterOpened,
    ServiceStarted,
    TicketCalled,
    Update,
    change_from_event,
)
from mpp.queue.persistence.tables import counters, tickets

log = logging.getLogger(__name__)

TOPICS = (QUEUE_VISITS, QUEUE_COUNTERS)
SUBSCRIBER_BUFFER = 256
HEARTBEAT_S = 15.0


class UnknownSite(Exception):
    pass


class BoardHub:
    """The boards of the sites this process serves, their screens, and the feed that updates them."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        sites: dict[str, tzinfo],
        labels: dict[str, dict[str, CounterLabel]],
        bootstrap: str | None,
        security: KafkaSecurity = PLAINTEXT,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._sites = sites
        self._labels = labels
        self._bootstrap = bootstrap
        self._security = security
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.boards: dict[str, BoardState] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._screens: dict[str, set[asyncio.Queue[Update | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.feeding = asyncio.Event()
        """Set once the Kafka feed is assigned its partitions and positioned."""
        self._previous_handlers: dict[int, Any] = {}

    @property
    def sites(self) -> dict[str, tzinfo]:
        return self._sites

    # -- boards ----------------------------------------------------------------------------------

    async def board(self, site: str) -> BoardState:
        """The site's board, loaded from the database on first use."""
        board = self.boards.get(site)
        if board is not None:
            return board
        if site not in self._sites:
            raise UnknownSite(site)
        lock = self._loading.setdefault(site, asyncio.Lock())
        async with lock:
            board = self.boards.get(site)
            if board is None:
                board = BoardState(site=site, zone=self._sites[site], labels=self._labels.get(site, {}))
                # Registered before the load: events arriving meanwhile are applied, and the load's
                # (older or equal) changes are then no-ops.
                self.boards[site] = board
                await self._load(board)
            return board

    async def _load(self, board: BoardState) -> None:
        """Today's calls, the tickets at counters and the open counters, from the database."""
        today = self.clock().astimezone(board.zone).date().isoformat()
        t = tickets
        async with self._sessions() as session:
            called = (
                await session.execute(
                    select(
                        t.c.id,
                        t.c.number,
                        t.c.agency,
                        t.c.service_type,
                        t.c.counter,
                        t.c.call_count,
                        t.c.called_at,
                        t.c.state,
                        t.c.started_at,
                    )
                    .where(t.c.site == board.site, t.c.day == today, t.c.called_at.is_not(None))
                    .order_by(t.c.called_at.desc())
                    .limit(board.recent * 4)
                )
            ).all()
            at_counters = (
                await session.execute(
                    select(
                        t.c.id,
                        t.c.number,
                        t.c.agency,
                        t.c.service_type,
                        t.c.counter,
                        t.c.call_count,
                        t.c.called_at,
                        t.c.state,
                        t.c.started_at,
                    ).where(
                        t.c.site == board.site,
                        t.c.state.in_(("called", "serving")),
                        t.c.counter.is_not(None),
                    )
                )
            ).all()
            open_counters = (
                await session.execute(
                    select(counters.c.code, counters.c.agency, counters.c.opened_at).where(
                        counters.c.site == board.site, counters.c.open.is_(True)
                    )
                )
            ).all()
        changes: list[Change] = []
        for code, agency, opened_at in open_counters:
            changes.append(CounterOpened(counter=code, agency=agency, at=_aware(opened_at) or _EPOCH))
        seen: set[str] = set()
        for row in sorted([*called, *at_counters], key=lambda r: _aware(r.called_at) or _EPOCH):
            if row.id in seen or row.counter is None or row.called_at is None:
                continue
            seen.add(row.id)
            at = _aware(row.called_at)
            assert at is not None
            changes.append(
                TicketCalled(
                    ticket_id=row.id,
                    number=row.number,
                    agency=row.agency,
                    service_type=row.service_type,
                    counter=row.counter,
                    call_count=max(1, row.call_count),
                    at=at,
                )
            )
            if row.state == "serving" and row.started_at is not None:
                started = _aware(row.started_at)
                assert started is not None
                changes.append(ServiceStarted(ticket_id=row.id, counter=row.counter, at=started))
        for change in changes:
            self._publish(board, board.apply(change))
        log.info("queue.board.loaded", extra={"site": board.site, "calls": len(board.calls)})

    def apply(self, site: str, change: Change) -> Update | None:
        """Apply a change to a loaded board and send it to its screens (boards not loaded ignore it)."""
        board = self.boards.get(site)
        if board is None:
            return None
        update = board.apply(change)
        self._publish(board, update)
        return update

    # -- screens ---------------------------------------------------------------------------------

    def subscribe(self, site: str) -> asyncio.Queue[Update | None]:
        queue: asyncio.Queue[Update | None] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        if self._stopping.is_set():
            queue.put_nowait(None)
        self._screens.setdefault(site, set()).add(queue)
        return queue

    def unsubscribe(self, site: str, queue: asyncio.Queue[Update | None]) -> None:
        self._screens.get(site, set()).discard(queue)

    def screens(self, site: str) -> int:
        return len(self._screens.get(site, ()))

    def _publish(self, board: BoardState, update: Update | None) -> None:
        if update is None:
            return
        for queue in list(self._screens.get(board.site, ())):
            try:
                queue.put_nowait(update)
            except asyncio.QueueFull:
                # A screen that cannot keep up is disconnected; it reconnects and resumes or re-syncs.
                self._end(board.site, queue)

    def _end(self, site: str, queue: asyncio.Queue[Update | None]) -> None:
        self.unsubscribe(site, queue)
        while True:
            try:
                queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                queue.get_nowait()

    def close_screens(self) -> None:
        """End every open stream, so a stopping server is not held open by its screens."""
        self._stopping.set()
        for site, queues in list(self._screens.items()):
            for queue in list(queues):
                self._end(site, queue)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, default_site: str) -> None:
        if default_site in self._sites:
            await self.board(default_site)
        if self._bootstrap:
            self._task = asyncio.create_task(self._feed(), name="queue board feed")
        self._chain_exit_signals()

    async def stop(self) -> None:
        self._restore_signals()
        self.close_screens()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _chain_exit_signals(self) -> None:
        """Close the screens' streams as soon as the server is told to stop.

        Uvicorn waits for open responses before it runs the lifespan shutdown, and an event stream never
        ends by itself; its own SIGTERM/SIGINT handler is kept and called after ours.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if getattr(previous, "__qualname__", "") != "Server.handle_exit":
                continue  # not served by uvicorn (tests in process): leave the handlers alone

            def handler(signum: int, frame: FrameType | None, _previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.close_screens)
                _previous(signum, frame)

            self._previous_handlers[sig] = previous
            signal.signal(sig, handler)

    def _restore_signals(self) -> None:
        for sig, previous in self._previous_handlers.items():
            with contextlib.suppress(ValueError):
                signal.signal(sig, previous)
        self._previous_handlers.clear()

    async def _feed(self) -> None:
        """Follow the topics for as long as the process lives, reconnecting after failures."""
        delay = 0.5
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("queue.board.feed_failed", extra={"error": repr(exc), "retry_s": delay})
                self.feeding.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _follow(self) -> None:
        assert self._bootstrap is not None
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **self._security.options(),
            group_id=None,
            enable_auto_commit=False,
            client_id=f"queue-board-{socket.gethostname()}-{os.getpid()}",
            isolation_level="read_committed",
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            partitions = [
                tp
                for topic in TOPICS
                for tp in await topic_partitions(self._bootstrap, topic, security=self._security)
            ]
            if not partitions:
                raise RuntimeError("the queue topics have no partitions yet")
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
            # Changes committed between the boards' first load and this position are read again from
            # the database; applying them twice changes nothing.
            for board in list(self.boards.values()):
                await self._load(board)
            self.feeding.set()
            log.info("queue.board.following", extra={"partitions": len(partitions)})
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batches.values():
                    for record in records:
                        self._consume(record)
        except KafkaError:
            raise
        finally:
            self.feeding.clear()
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _consume(self, record: Any) -> None:
        if not _may_change_a_board(record.headers):
            return  # a visit, a ticket issued, a survey...: most of the topics' events, never parsed
        try:
            envelope = from_record(record.value, record.headers or ())
        except (UnknownEventType, MalformedEvent):
            return  # the dead-letter topics of the real consumers deal with these
        change = change_from_event(envelope)
        if change is not None and envelope.site is not None:
            self.apply(envelope.site, change)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _may_change_a_board(headers: Any) -> bool:
    """Whether a record's ``ce_type`` header names an event that changes a board (a record without
    one is parsed, and left alone if it is not an event at all)."""
    for key, value in headers or ():
        if key == "ce_type":
            return (value or b"").decode("utf-8", "replace") in BOARD_EVENT_TYPES
    return True
