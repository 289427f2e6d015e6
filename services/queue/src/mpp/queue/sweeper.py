"""The periodic jobs run beside the HTTP server: the sweep that marks missed appointments and the day
close of every site whose day is over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mpp.queue.domain.dayclose import DayCloseReport
from mpp.queue.handlers import HANDLERS, CloseDay, SweepMissed, sites_with_open_work

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


MAX_BATCHES = 1000


async def close_site_day(svc: Any, site: str, correlation_id: str = "") -> DayCloseReport:
    """Close the site's days that are over, one transaction per batch, until nothing is left to close."""
    total = DayCloseReport()
    for _ in range(MAX_BATCHES):
        async with svc.uow() as uow:
            report: DayCloseReport = await HANDLERS[CloseDay](CloseDay(site, correlation_id), uow, svc.ports)
            await uow.commit()
        total.add(report)
        if report.total == 0:
            break
    return total


async def close_days_once(svc: Any) -> DayCloseReport:
    """The day close of every site with something still open."""
    async with svc.uow() as uow:
        sites = await sites_with_open_work(uow)
    total = DayCloseReport()
    for site in sites:
        total.add(await close_site_day(svc, site))
    return total


async def _close_loop(svc: Any, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            report = await close_days_once(svc)
            if report.total:
                log.info("queue.day_close.closed", extra=dict(report.__dict__))
        except Exception as exc:  # retried at the next interval
            log.warning("queue.day_close.failed", extra={"error": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


@contextlib.asynccontextmanager
async def day_closer(svc: Any, interval: float) -> AsyncIterator[None]:
    """Close the days that are over every ``interval`` seconds while the block runs (never when 0)."""
    if interval <= 0:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(_close_loop(svc, interval, stop), name="queue day close")
    try:
        yield
    finally:
        stop.set()
        await task
