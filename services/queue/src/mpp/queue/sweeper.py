"""The periodic sweep that marks missed appointments, run beside the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mpp.queue.handlers import HANDLERS, SweepMissed

log = logging.getLogger(__name__)


async def sweep_once(svc: Any) -> int:
    """One sweep over every site; the number of appointments marked missed."""
    async with svc.uow() as uow:
        missed = await HANDLERS[SweepMissed](SweepMissed(correlation_id=""), uow, svc.ports)
        await uow.commit()
    return len(missed)


async def _loop(svc: Any, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            count = await sweep_once(svc)
            if count:
                log.info("queue.appointments.missed", extra={"count": count})
        except Exception as exc:  # a failed sweep is retried at the next interval
            log.warning("queue.appointments.sweep_failed", extra={"error": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


@contextlib.asynccontextmanager
async def missed_sweeper(svc: Any, interval: float) -> AsyncIterator[None]:
    """Sweep every ``interval`` seconds while the block runs (never when ``interval`` is 0)."""
    if interval <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(svc, interval, stop), name="appointments missed sweep")
    try:
        yield
    finally:
        stop.set()
        await task
