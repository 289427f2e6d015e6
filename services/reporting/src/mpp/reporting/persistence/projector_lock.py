"""Who may write the read models: the service's projectors (any number, shared) or one rebuild (alone).

On PostgreSQL this is a session advisory lock: every process whose projector runs holds it shared on a
connection of its own for as long as it lives, and a rebuild takes it exclusively, so a rebuild refuses to
start while a projector runs and a projector starting during a rebuild waits for it to finish. On SQLite
(one machine) the same is an ``flock`` on a file next to the database. The lock is released by the
operating system or the database when its holder dies, so a killed process never leaves it behind.

The session lock alone is not a hard guard on PostgreSQL: if the database restarts or the lock's
connection is cut, the projector loses it without noticing, and a rebuild could then start beside it.
So a running projector also **fences** each batch: its transaction takes the lock shared for itself
(:func:`fence`, ``pg_try_advisory_xact_lock_shared``) and is retried later if a rebuild holds it; and
:meth:`ProjectorLock.keep` checks the session lock now and then and takes it again when it was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import zlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from mpp.kit.db import RetryLater

log = logging.getLogger(__name__)

LOCK_KEY = zlib.crc32(b"mpp.reporting.read-models")
"""The advisory lock's key (one per database: the read models are shared by every consumer group)."""


class ProjectorLock:
    """Held shared by a running projector, exclusively by a rebuild; ``acquire`` never waits."""

    def __init__(self, engine: AsyncEngine, *, exclusive: bool) -> None:
        self._engine = engine
        self._exclusive = exclusive
        self._conn: AsyncConnection | None = None
        self._file: IO[Any] | None = None

    def _lock_path(self) -> Path | None:
        url = make_url(str(self._engine.url))
        if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
            return None
        return Path(f"{url.database}.projector.lock")

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it in a conflicting way; false when somebody does."""
        if self._engine.dialect.name == "postgresql":
            conn = await self._engine.connect()
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            function = "pg_try_advisory_lock" if self._exclusive else "pg_try_advisory_lock_shared"
            got = bool((await conn.execute(text(f"SELECT {function}(:key)"), {"key": LOCK_KEY})).scalar())
            if not got:
                await conn.close()
                return False
            self._conn = conn
            return True
        path = self._lock_path()
        if path is None:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if self._exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    async def held(self) -> bool:
        """Whether the lock is still held; on PostgreSQL, whether the session holding it is alive."""
        if self._engine.dialect.name != "postgresql":
            return self._file is not None or self._lock_path() is None
        if self._conn is None:
            return False
        try:
            await self._conn.execute(text("SELECT 1"))
        except Exception:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            return False
        return True

    async def keep(self, stop: asyncio.Event, every_s: float) -> None:
        """Until ``stop``: check the lock every ``every_s`` seconds and take it again when it was lost
        (the database restarted, the connection was cut), so a rebuild keeps refusing to start."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            if stop.is_set() or await self.held():
                continue
            log.warning("reporting.projector.lock_lost")
            try:
                if await self.acquire():
                    log.warning("reporting.projector.lock_taken_again")
            except Exception as exc:  # the database is still away: try again at the next check
                log.warning("reporting.projector.lock_retry", extra={"error": type(exc).__name__})

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                # The connection goes back to the pool: give the lock back first.
                await conn.execute(text("SELECT pg_advisory_unlock_all()"))
                await conn.close()
            except Exception:
                with contextlib.suppress(Exception):
                    await conn.invalidate()  # ending the session releases its locks as well
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class RebuildRunning(RetryLater):
    """A rebuild holds the read models: a running projector's batch waits and is retried."""


async def fence(session: AsyncSession) -> None:
    """Take the lock shared for the session's transaction (PostgreSQL), or refuse the batch while a
    rebuild holds it exclusively; the transaction's end gives it back."""
    if session.get_bind().dialect.name != "postgresql":
        return
    got = (
        await session.execute(text("SELECT pg_try_advisory_xact_lock_shared(:key)"), {"key": LOCK_KEY})
    ).scalar()
    if not got:
        raise RebuildRunning("a rebuild of the read models is running: the batch waits for it")


__all__ = ["LOCK_KEY", "ProjectorLock", "RebuildRunning", "fence"]
