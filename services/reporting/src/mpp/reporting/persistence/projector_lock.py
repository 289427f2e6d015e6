"""Who may write the read models: the service's projectors (any number, shared) or one rebuild (alone).

On PostgreSQL this is a session advisory lock: every process whose projector runs holds it shared on a
connection of its own for as long as it lives, and a rebuild takes it exclusively, so a rebuild refuses to
start while a projector runs and a projector starting during a rebuild waits for it to finish. On SQLite
(one machine) the same is an ``flock`` on a file next to the database. The lock is released by the
operating system or the database when its holder dies, so a killed process never leaves it behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


__all__ = ["LOCK_KEY", "ProjectorLock"]
