"""The outbox relay: publishes committed outbox rows in order, batched, then marks them sent.

At-least-once: a crash between publishing and marking republishes the batch after restart, and
consumers deduplicate by event id. Order per key holds because rows are read in commit-sequence
order and sent through one idempotent producer (``acks=all``), which keeps per-partition order.
On PostgreSQL only one relay per database is active at a time (an advisory lock); the others wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mpp.contracts.topics import TOPICS
from mpp.kit.db import is_transient
from mpp.kit.observability import ServiceMetrics
from mpp.kit.outbox import decode_headers

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        outbox: Table,
        producer: AIOKafkaProducer,
        metrics: ServiceMetrics | None = None,
        batch_size: int = 2000,
        poll_interval_s: float = 0.05,
        wakeup: asyncio.Event | None = None,
        lock_name: str = "mpp-outbox-relay",
        retain_sent: timedelta = timedelta(hours=24),
        coalesce_s: float = 0.005,
        purge_at_once_topics: frozenset[str] | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll = poll_interval_s
        self.wakeup = wakeup or asyncio.Event()
        self._lock_key = zlib.crc32(lock_name.encode())
        self._retain_sent = retain_sent
        self._coalesce = coalesce_s
        # Rows of topics that carry personal data are deleted as soon as Kafka has them, instead of
        # being kept for a day like the others: personal data does not linger in the outbox.
        self._purge_at_once = (
            purge_at_once_topics
            if purge_at_once_topics is not None
            else frozenset(t.name for t in TOPICS if t.personal_data)
        )
        # Built once: the relay runs these with every batch.
        self._unsent = (
            select(outbox.c.seq, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
            .where(outbox.c.sent_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(batch_size)
        )
        # The same two statements in PostgreSQL's own words, sent straight to the driver: through
        # SQLAlchemy they cost about three times the CPU (1.0 against 0.3 ms a batch, measured), and a
        # busy service's relay runs many small batches a second.
        # The table's name is the service's own (quoted), never input.
        table = '"' + outbox.name.replace('"', '""') + '"'
        self._pg_unsent = (
            f"SELECT seq, topic, key, value, headers FROM {table} WHERE sent_at IS NULL ORDER BY seq LIMIT $1"  # noqa: S608
        )
        self._pg_mark_sent = f"UPDATE {table} SET sent_at = $2 WHERE seq = ANY($1::bigint[])"  # noqa: S608
        self._pg_sent_and_gone = f"WITH gone AS (DELETE FROM {table} WHERE seq = ANY($3::bigint[])) UPDATE {table} SET sent_at = $2 WHERE seq = ANY($1::bigint[])"  # noqa: S608
        self._lock_conn: AsyncConnection | None = None
        self._counted_at = 0.0
        self.published = 0

    async def publish_batch(self) -> int:
        """Publish up to one batch of unsent rows; returns how many were published."""
        rows = await self._unsent_rows()
        if not rows:
            return 0
        started = time.perf_counter()
        await self._send(rows)
        await self._mark_sent(rows)
        self._published([row[1] for row in rows], started)
        return len(rows)

    async def _unsent_rows(self) -> Sequence[Any]:
        """Up to one batch of unsent rows, each (seq, topic, key, value, headers), in commit order."""
        async with self._engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return (await conn.execute(self._unsent)).all()
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            rows: list[Any] = await driver.fetch(self._pg_unsent, self._batch_size)
            return rows

    async def _mark_sent(self, rows: Sequence[Any]) -> None:
        """Mark published rows sent, and delete those of personal-data topics. On PostgreSQL one
        statement, committed by the driver on its own."""
        now = datetime.now(UTC)
        personal = [row[0] for row in rows if row[1] in self._purge_at_once]
        kept = [row[0] for row in rows if row[1] not in self._purge_at_once]
        o = self._outbox
        if self._engine.dialect.name != "postgresql":
            async with self._engine.begin() as conn:
                if personal:
                    await conn.execute(delete(o).where(o.c.seq.in_(personal)))
                if kept:
                    await conn.execute(update(o).where(o.c.seq.in_(kept)).values(sent_at=now))
            return
        async with self._engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            if personal:
                await driver.execute(self._pg_sent_and_gone, kept, now, personal)
            else:
                await driver.execute(self._pg_mark_sent, kept, now)

    async def _send(self, rows: Sequence[Any]) -> None:
        """Send rows of (seq, topic, key, value, headers) in order and wait for the broker's acks."""
        futures = []
        for _seq, topic, key, value, headers in rows:
            futures.append(
                await self._producer.send(topic, value=value, key=key, headers=decode_headers(headers))
            )
        await asyncio.gather(*futures)

    def _published(self, topics: list[str], started: float) -> None:
        """Count a batch published (one topic per row)."""
        self.published += len(topics)
        if self._metrics is not None:
            self._metrics.outbox_relay_batch_seconds.observe(time.perf_counter() - started)
            for topic, count in Counter(topics).items():
                self._metrics.events_published_total.labels(topic=topic).inc(count)

    async def _report_backlog(self, published: int) -> None:
        """The backlog gauge after a batch that was not full. Nothing unsent found: the backlog is empty,
        no count needed; otherwise it is counted at most once a second (a busy service publishes many
        small batches, and the count would be one more query each)."""
        assert self._metrics is not None
        if published == 0:
            self._metrics.outbox_backlog.set(0)
        elif time.monotonic() - self._counted_at >= 1.0:
            self._counted_at = time.monotonic()
            self._metrics.outbox_backlog.set(await self.backlog())

    async def backlog(self) -> int:
        o = self._outbox
        async with self._engine.connect() as conn:
            count = (await conn.execute(select(func.count()).where(o.c.sent_at.is_(None)))).scalar_one()
        return int(count)

    async def purge_sent(self) -> None:
        """Delete rows sent longer ago than the retention (they are on Kafka)."""
        o = self._outbox
        cutoff = datetime.now(UTC) - self._retain_sent
        async with self._engine.begin() as conn:
            await conn.execute(delete(o).where(o.c.sent_at.is_not(None), o.c.sent_at < cutoff))

    async def drain(self, deadline_s: float = 10.0) -> None:
        """Publish everything pending (used on graceful shutdown)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and await self.publish_batch() > 0:
            pass

    async def _acquire_leadership(self, stop: asyncio.Event) -> bool:
        if self._engine.dialect.name != "postgresql":
            return True
        while not stop.is_set():
            try:
                conn = await self._engine.connect()
                got = (
                    await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_key})
                ).scalar()
                if got:
                    await conn.commit()
                    self._lock_conn = conn
                    log.info("kit.relay.leader")
                    return True
                await conn.close()
            except Exception as exc:
                if not is_transient(exc):
                    raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
        return False

    async def _pause(self, published: int, stop: asyncio.Event) -> None:
        """Between batches: nothing was unsent, so wait for a commit's wakeup (or the poll interval);
        then, after a wakeup or a batch that was not full, wait ``coalesce_s`` more, so that the commits
        right behind join the next batch. Under load, a relay that went straight back would publish a few
        rows per batch, each batch paying two transactions of its own."""
        woken = published > 0
        if published == 0:
            wake = asyncio.ensure_future(self.wakeup.wait())
            halt = asyncio.ensure_future(stop.wait())
            await asyncio.wait({wake, halt}, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
            woken = wake.done()
            wake.cancel()
            halt.cancel()
        if woken and published < self._batch_size and self._coalesce > 0 and not stop.is_set():
            await asyncio.sleep(self._coalesce)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set, then drain what is left."""
        if not await self._acquire_leadership(stop):
            return
        backoff = 0.1
        last_purge = 0.0
        try:
            while not stop.is_set():
                try:
                    self.wakeup.clear()
                    n = await self.publish_batch()
                    backoff = 0.1
                    if self._metrics is not None and n < self._batch_size:
                        await self._report_backlog(n)
                    if time.monotonic() - last_purge > 600:
                        last_purge = time.monotonic()
                        await self.purge_sent()
                    await self._pause(n, stop)
                except Exception as exc:
                    if not is_transient(exc):
                        log.exception("kit.relay.failed")
                    else:
                        log.warning(
                            "kit.relay.retrying", extra={"error": type(exc).__name__, "backoff_s": backoff}
                        )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            try:
                await self.drain()
            except Exception:
                log.exception("kit.relay.drain_failed")
        finally:
            if self._lock_conn is not None:
                try:
                    await self._lock_conn.close()
                except Exception:
                    log.debug("kit.relay.lock_close_failed")
                self._lock_conn = None
