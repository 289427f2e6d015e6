"""Site mode: each published site's day as a ``DailySummaryPublished``, through the outbox.

Every ``summary_interval_s`` the publisher looks at the days the projector changed since their last
summary and at the days not yet published as final. A day's summary is built from the read models in
the transaction that writes it to the outbox and records its revision:

* during the day (and until ``summary_close_delay_s`` after the site's local midnight) a provisional
  summary (``final: false``), only when its figures differ from the last one published;
* once the day has closed, a final summary, even when its figures did not change;
* a late event for a closed day changes its figures: the day is republished, final, with a higher
  revision (see :func:`next_revision`).

The publication state of a day is locked while it is published, so several processes on one
database never publish the same revision twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.reporting import DailySummaryPublishedV1, summary_key
from mpp.contracts.masterdata import Catalogue
from mpp.kit.db import is_transient
from mpp.kit.outbox import write_outbox
from mpp.reporting.domain.summary import RESOLUTIONS_SECONDS, SiteMeta, build_summary, figures_digest
from mpp.reporting.persistence.summaries import (
    DayRows,
    day_rows,
    lock_state,
    pending_days,
    save_state,
    seed_state,
)

log = logging.getLogger(__name__)

MAX_SUMMARY_BYTES = 900_000
"""Below the broker's default record limit (1 MB) with room for the headers."""

PRODUCER = "mpp.reporting"
AGENCY = "mpp"
"""The envelope's agency: a summary belongs to the MPP as a whole."""


def next_revision(last: int, now: datetime) -> int:
    """The revision of the next summary of a day: the publication time in whole seconds since the epoch,
    or one more than the last revision when that is higher. Revisions keep increasing even when a site
    deployment's database is recreated, so the national deployment always takes its new summaries."""
    return max(last + 1, int(now.timestamp()))


class SummaryPublisher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        sites: frozenset[str],
        catalogue: Catalogue,
        site_tz: Callable[[str], ZoneInfo],
        close_delay: timedelta,
        wakeup: asyncio.Event | None = None,
        max_bytes: int = MAX_SUMMARY_BYTES,
    ) -> None:
        self.max_bytes = max_bytes
        self._seeded = False
        self.sessions = sessions
        self.outbox = outbox
        self.sites = sites
        self.site_tz = site_tz
        self.close_delay = close_delay
        self.wakeup = wakeup
        self.meta = {
            s.code: SiteMeta(s.code, s.kabkota, s.province, s.timezone)
            for s in catalogue.sites
            if s.code in sites
        }
        for missing in sorted(sites - set(self.meta)):
            log.warning("reporting.summary.unknown_site", extra={"site": missing})

    def closed(self, site: str, day: date, now: datetime) -> bool:
        """Whether the site's local day has ended (plus the grace for events still in flight)."""
        midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.site_tz(site))
        return now >= midnight + self.close_delay

    def build(
        self, site: SiteMeta, day: date, revision: int, final: bool, now: datetime, rows: DayRows
    ) -> DailySummaryPublishedV1:
        """The day's summary with the finest histogram buckets that keep it within one Kafka record; when
        even the widest are too large, without the split of tickets and durations by hour of day."""
        summary: DailySummaryPublishedV1 | None = None
        shapes = [(resolution, True) for resolution in RESOLUTIONS_SECONDS]
        shapes.append((RESOLUTIONS_SECONDS[-1], False))
        for resolution, hours in shapes:
            summary = build_summary(
                site,
                day,
                revision=revision,
                final=final,
                generated_at=now,
                facts=rows.facts,
                visits_by_hour=rows.visits_by_hour,
                histograms=rows.histograms,
                hourly=rows.hourly,
                resolution=resolution,
                hours=hours,
            )
            if len(summary.model_dump_json()) <= self.max_bytes:
                break
            log.warning(
                "reporting.summary.coarser_histograms",
                extra={
                    "site": site.code,
                    "day": day.isoformat(),
                    "resolution_s": resolution,
                    "by_hour": hours,
                },
            )
        assert summary is not None
        return summary

    async def publish_due(self, now: datetime | None = None) -> int:
        """Publish every summary that is due; returns how many were written to the outbox."""
        now = now or datetime.now(UTC)
        if not self._seeded and self.meta:
            async with self.sessions() as session, session.begin():
                await seed_state(session, frozenset(self.meta))
            self._seeded = True
        async with self.sessions() as session:
            days = await pending_days(session, frozenset(self.meta))
        published = 0
        for site, day in days:
            published += await self._publish_day(self.meta[site], day, now)
        if published and self.wakeup is not None:
            self.wakeup.set()
        return published

    async def _publish_day(self, site: SiteMeta, day: date, now: datetime) -> int:
        closed = self.closed(site.code, day, now)
        async with self.sessions() as session, session.begin():
            state = await lock_state(session, site.code, day)
            if state is None or (state.seen >= state.changes and (state.final or not closed)):
                return 0
            final = closed or state.final
            rows = await day_rows(session, site.code, day)
            try:
                summary = self.build(site, day, next_revision(state.revision, now), final, now, rows)
            except ValidationError as exc:
                # Read models that break the contract's rules are a bug to fix, not a reason to stop
                # publishing the other days.
                log.error(
                    "reporting.summary.invalid",
                    extra={"site": site.code, "day": day.isoformat(), "error": str(exc)[:500]},
                )
                return 0
            digest = figures_digest(summary)
            if digest == state.digest and final == state.final:
                await save_state(
                    session,
                    site.code,
                    day,
                    seen=state.changes,
                    revision=state.revision,
                    final=state.final,
                    digest=digest,
                    published_at=None,
                )
                return 0
            envelope = Envelope.wrap(
                summary,
                producer=PRODUCER,
                agency=AGENCY,
                site=site.code,
                subject=summary_key(site.code, day),
                occurred_at=now,
            )
            await write_outbox(session, self.outbox, [envelope])
            await save_state(
                session,
                site.code,
                day,
                seen=state.changes,
                revision=summary.revision,
                final=final,
                digest=digest,
                published_at=now,
            )
        log.info(
            "reporting.summary.published",
            extra={"site": site.code, "day": day.isoformat(), "revision": summary.revision, "final": final},
        )
        return 1

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Publish what is due every ``interval_s`` seconds until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if stop.is_set():
                return
            try:
                await self.publish_due()
            except Exception as exc:
                # The next round retries: a summary is never lost, only published later.
                if is_transient(exc):
                    log.warning("reporting.summary.database_unavailable", extra={"error": type(exc).__name__})
                else:
                    log.exception("reporting.summary.failed")
