"""How late the event loop runs, and where it is stuck when it stops.

Every request of a service shares one event loop: a callback that holds it (a large JSON document, a full
garbage collection, a blocking call) delays every request in flight. :class:`LoopWatch` measures that
delay all the time and names its cause when it is long:

* a task on the loop wakes every ``interval`` and records how late it woke (the histogram
  ``mpp_<service>_event_loop_lag_seconds``);
* a thread checks that task's heartbeat; when the loop has not come round for ``block_threshold``, it logs
  ``kit.loop.blocked`` once for that stall, with the innermost frames of the loop's thread (file, line and
  function only: never a variable's value), and ``kit.loop.unblocked`` with the stall's length when the
  loop comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from typing import Any

log = logging.getLogger(__name__)

STACK_FRAMES = 8
"""Innermost frames of the loop's thread logged with a stall."""


class LoopWatch:
    """Start with :meth:`start` from the event loop's thread; :meth:`stop` ends both the task and the thread."""

    def __init__(
        self,
        lag_histogram: Any | None = None,
        *,
        interval: float = 0.05,
        block_threshold: float = 0.25,
    ) -> None:
        self.interval = interval
        self.block_threshold = block_threshold
        self._lag = lag_histogram
        self._beat = time.monotonic()
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.stalls = 0
        """Stalls reported since the start (each logged once)."""

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._tick(), name="loop watch")
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            self._thread.join(timeout=2)

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self._beat = now = time.monotonic()
            if self._lag is not None:
                self._lag.observe(max(0.0, now - before - self.interval))

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stopped.wait(self.interval):
            beat = self._beat
            quiet = time.monotonic() - beat
            if stalled_since is None and quiet >= self.block_threshold:
                stalled_since = beat
                self.stalls += 1
                log.warning(
                    "kit.loop.blocked",
                    extra={"blocked_ms": round(quiet * 1000), "stack": self._stack()},
                )
            elif stalled_since is not None and beat > stalled_since:
                log.warning("kit.loop.unblocked", extra={"stalled_ms": round((beat - stalled_since) * 1000)})
                stalled_since = None

    def _stack(self) -> str:
        """The frames the loop's thread is running, innermost first, each called by the next
        (``file:line function < ...``)."""
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return ""
        frames = traceback.extract_stack(frame)[-STACK_FRAMES:]
        return " < ".join(f"{_short(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))


def _short(path: str) -> str:
    """The path from the package root on (``mpp/queue/handlers.py``, ``asyncpg/pool.py``), not the
    machine's directories."""
    parts = path.replace("\\", "/").split("/")
    for marker in ("site-packages", "src", "lib"):
        if marker in parts:
            at = len(parts) - 1 - parts[::-1].index(marker)
            if at + 1 < len(parts):
                return "/".join(parts[at + 1 :])
    return "/".join(parts[-2:])
