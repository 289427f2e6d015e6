"""The transactional outbox: events are written in the same database transaction as the state change.

No handler ever publishes to Kafka: it adds envelopes to its unit of work, and the relay
(:mod:`mpp.kit.relay`) publishes committed rows in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import orjson
from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.envelope import Envelope
from mpp.contracts.kafka import to_record
from mpp.kit.observability import inject_traceparent


def encode_headers(headers: list[tuple[str, bytes]]) -> bytes:
    """Headers as stored in the outbox: a compact JSON list of ``[name, text]`` pairs."""
    return orjson.dumps([(k, v.decode()) for k, v in headers])


def decode_headers(raw: bytes) -> list[tuple[str, bytes]]:
    """The Kafka headers of an outbox row, ready to send."""
    return [(k, v.encode()) for k, v in orjson.loads(raw)]


def outbox_row(envelope: Envelope, now: datetime) -> dict[str, Any]:
    """The outbox row of one envelope: topic, key, value and CloudEvents headers, ready to send."""
    if envelope.traceparent is None:
        tp = inject_traceparent()
        if tp is not None:
            envelope = envelope.model_copy(update={"traceparent": tp})
    key, value, headers = to_record(envelope)
    return {
        "event_id": str(envelope.id),
        "topic": envelope.topic,
        "key": key,
        "value": value,
        "headers": encode_headers(headers),
        "created_at": now,
        "sent_at": None,
    }


_INSERTS: dict[Table, Insert] = {}
"""One INSERT statement per outbox table, built once (building and keying it on every commit costs more
than sending it)."""


async def write_outbox(session: AsyncSession, outbox: Table, envelopes: Sequence[Envelope]) -> None:
    """Insert outbox rows for ``envelopes`` in the session's current transaction."""
    if not envelopes:
        return
    stmt = _INSERTS.get(outbox)
    if stmt is None:
        stmt = _INSERTS[outbox] = insert(outbox)
    now = datetime.now(UTC)
    rows = [outbox_row(e, now) for e in envelopes]
    # A list even for one row: an executemany sends no RETURNING of the generated key, which nobody reads.
    await session.execute(stmt, rows)


class UnitOfWork:
    """One database transaction: state changes plus the events they produce.

    ``async with uow: ...; uow.publish(envelope); await uow.commit()``. Leaving the block without
    committing rolls everything back, events included. Services subclass it to add repositories.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._wakeup = wakeup
        self._pending: list[Envelope] = []
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work is not open")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        await self._session.begin()
        self._pending = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()

    def publish(self, *envelopes: Envelope) -> None:
        """Stage events; they are written to the outbox by :meth:`commit`, in this order."""
        self._pending.extend(envelopes)

    def staged(self) -> int:
        """How many events are staged (a mark for :meth:`trace_staged`)."""
        return len(self._pending)

    def trace_staged(self, since: int) -> None:
        """Give the events staged after ``since`` the trace context current now, unless they carry one.

        :meth:`commit` stamps events with the trace current when it runs; a unit of work that commits the
        work of several requests together (group commit) calls this in each request's own context."""
        tp = inject_traceparent()
        if tp is None:
            return
        for i in range(since, len(self._pending)):
            envelope = self._pending[i]
            if envelope.traceparent is None:
                self._pending[i] = envelope.model_copy(update={"traceparent": tp})

    async def commit(self) -> None:
        session = self.session
        await write_outbox(session, self._outbox, self._pending)
        self._pending = []
        await session.commit()
        if self._wakeup is not None:
            self._wakeup.set()
