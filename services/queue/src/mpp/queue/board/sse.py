"""Server-Sent Events framing (text/event-stream) and the stream of one screen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import orjson

from mpp.queue.board.state import BoardState, Update

RETRY_MS = 2000


def sse_message(data: Any, *, event: str | None = None, id: str | None = None) -> bytes:
    """One SSE message; the JSON of ``data`` is a single line, so it needs one ``data:`` field."""
    lines = []
    if id is not None:
        if any(ch in id for ch in "\r\n\0"):
            raise ValueError("an event id cannot hold line breaks or NUL")
        lines.append(f"id: {id}")
    if event is not None:
        if any(ch in event for ch in "\r\n"):
            raise ValueError("an event name cannot hold line breaks")
        lines.append(f"event: {event}")
    lines.append("data: " + orjson.dumps(data).decode())
    return ("\n".join(lines) + "\n\n").encode()


def sse_retry(ms: int) -> bytes:
    """Tells the browser how long to wait before reconnecting."""
    return f"retry: {int(ms)}\n\n".encode()


def sse_heartbeat(now: datetime) -> bytes:
    """A heartbeat: keeps proxies from closing an idle stream and tells the page its connection lives.

    It has no id, so the browser's last event id (what a reconnect resumes from) stays the last update's.
    """
    return sse_message({"at": now.isoformat()}, event="heartbeat")


def update_message(board: BoardState, update: Update) -> bytes:
    return sse_message(update.data, event=update.kind, id=board.event_id(update.seq))


def snapshot_message(board: BoardState, agency: str | None, now: datetime) -> bytes:
    snapshot = board.snapshot(agency, now)
    return sse_message(snapshot, event="snapshot", id=snapshot["event_id"])


async def board_stream(
    board: BoardState,
    queue: asyncio.Queue[Update | None],
    *,
    agency: str | None,
    last_event_id: str | None,
    heartbeat_s: float,
    now: Callable[[], datetime],
) -> AsyncIterator[bytes]:
    """The messages of one screen: missed updates or a snapshot, then live updates and heartbeats.

    ``queue`` must already be subscribed to the board, so nothing falls between the snapshot and the live
    updates; updates the snapshot already holds are skipped by sequence number. ``None`` in the queue
    ends the stream (shutdown, or a screen too slow to keep up: it reconnects and resumes).
    """
    yield sse_retry(RETRY_MS)
    missed = board.since(last_event_id) if last_event_id else None
    sent = board.seq
    if missed is None:
        yield snapshot_message(board, agency, now())
    else:
        for old in missed:
            if agency is None or old.agency == agency:
                yield update_message(board, old)
    while True:
        update: Update | None
        try:
            async with asyncio.timeout(heartbeat_s):
                update = await queue.get()
        except TimeoutError:
            yield sse_heartbeat(now())
            continue
        if update is None:
            return
        if update.seq <= sent:
            continue
        sent = update.seq
        if agency is None or update.agency == agency:
            yield update_message(board, update)
