"""Reporting's event subscribers, each applied inside the consumer's transaction together with the inbox
and the consumed offsets, so a batch counts exactly once:

* the projector folds domain events into the read models (and, in site mode, notes which published
  sites' days changed, so their summaries are republished);
* the roll-up (national mode) keeps the latest revision of each site's ``DailySummaryPublished``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.reporting import DailySummaryPublishedV1, summary_key
from mpp.kit.consumer import BatchHandler, ReceivedEvent, TwoPhaseHandler
from mpp.reporting.domain.facts import SERVICE, WAITING, Facts, SlaCheck, SlaDue, fold_facts, no_due, no_sla
from mpp.reporting.domain.percentiles import MAX_ERROR_SECONDS
from mpp.reporting.domain.projection import CountKey, fold
from mpp.reporting.domain.summary import national_rows
from mpp.reporting.persistence.projector_lock import fence
from mpp.reporting.persistence.repository import (
    add_counts,
    add_facts,
    add_late,
    fill_pending_rollups,
    start_batch,
)
from mpp.reporting.persistence.summaries import mark_changed, replace_summary, stored_revision
from mpp.reporting.projection_metrics import ProjectionMetrics

log = logging.getLogger(__name__)

SUMMARY_TYPES = frozenset({"DailySummaryPublished"})


@dataclass(slots=True)
class Folded:
    """A batch of events summed in memory, ready to be added to the read models."""

    counts: Counter[CountKey] = field(default_factory=Counter)
    facts: Facts = field(default_factory=Facts)
    types: Counter[str] = field(default_factory=Counter)
    """Events by type (for the projection's metrics)."""


def projector(
    site_tz: Callable[[str], ZoneInfo],
    sla: SlaCheck = no_sla,
    due: SlaDue = no_due,
    published_sites: frozenset[str] = frozenset(),
    metrics: ProjectionMetrics | None = None,
    *,
    fenced: bool = False,
) -> TwoPhaseHandler[Folded]:
    """The projector's batch handler, in two steps: the events are folded into increments in memory
    (``prepare``: a pipelined consumer does it while the previous batch is written), then added to the
    read models in a few statements (``apply``). ``fenced`` (a running service, not a rebuild) makes each
    batch wait while a rebuild holds the read models (:func:`.persistence.projector_lock.fence`)."""

    def prepare(events: Sequence[ReceivedEvent], into: Folded | None) -> Folded:
        folded = Folded() if into is None else into
        envelopes = [e.envelope for e in events]
        fold(envelopes, site_tz, folded.counts)
        fold_facts(envelopes, site_tz, sla, due, folded.facts)
        folded.types.update(env.type for env in envelopes)
        return folded

    async def apply(session: AsyncSession, folded: Folded) -> None:
        started = time.perf_counter()
        if fenced:
            await fence(session)
        facts = folded.facts
        await add_counts(session, folded.counts)
        pending = await start_batch(session)
        if pending and fenced:
            # A rebuild stopped before it filled the roll-ups: they are filled (here or by another
            # process, whichever locks first) before anything is added to them.
            await fill_pending_rollups(session)
            pending = False
        # During a rebuild the daily read models only; the rebuild fills the roll-ups at its end.
        await add_facts(session, facts, rollups=not pending, started=True)
        await add_late(session, facts.late.values())
        if published_sites:
            # Keys are (day, site, agency, service type, measure).
            await mark_changed(session, ((k[1], k[0]) for k in facts.counts if k[1] in published_sites))
        if metrics is not None:
            # Counted when the batch's statements ran (the time is theirs, not the fold's); a batch rolled
            # back later is retried and counted again, so the counter may run slightly ahead of the read
            # models after an outage.
            metrics.applied(folded.types.elements(), time.perf_counter() - started)

    return TwoPhaseHandler(prepare, apply)


class InvalidSummary(ValueError):
    """A summary whose envelope does not match its content; it is dead-lettered."""


def _checked(env: Envelope) -> DailySummaryPublishedV1 | None:
    p = env.payload
    if not isinstance(p, DailySummaryPublishedV1):
        return None
    if env.site != p.site:
        raise InvalidSummary(f"envelope site {env.site!r} differs from the summary's site {p.site!r}")
    if env.subject != summary_key(p.site, p.day):
        raise InvalidSummary(f"subject {env.subject!r} is not {summary_key(p.site, p.day)!r}")
    return p


def aggregator(sites: frozenset[str] | None = None) -> BatchHandler:
    """Keep each site's day at its highest revision: a higher one replaces what is held, an equal or
    lower one (a redelivery, an older revision read late) is ignored. With ``sites``, summaries of other
    sites are consumed and left out."""

    async def aggregate(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        latest: dict[tuple[str, date], tuple[Envelope, DailySummaryPublishedV1]] = {}
        for ev in events:
            summary = _checked(ev.envelope)
            if summary is None or (sites is not None and summary.site not in sites):
                continue
            key = (summary.site, summary.day)
            if key not in latest or summary.revision > latest[key][1].revision:
                latest[key] = (ev.envelope, summary)
        for (site, day), (env, summary) in sorted(latest.items()):
            held = await stored_revision(session, site, day)
            if held is not None and held >= summary.revision:
                log.info(
                    "reporting.rollup.revision_ignored",
                    extra={"site": site, "day": day.isoformat(), "revision": summary.revision, "held": held},
                )
                continue
            rows = national_rows(summary)
            record = {
                "revision": summary.revision,
                "final": summary.final,
                "generated_at": summary.generated_at,
                "kabkota": summary.kabkota,
                "province": summary.province,
                "timezone": summary.timezone,
                "event_id": str(env.id),
                "waiting_error": rows.max_error.get(WAITING, MAX_ERROR_SECONDS),
                "service_error": rows.max_error.get(SERVICE, MAX_ERROR_SECONDS),
            }
            await replace_summary(session, site=site, day=day, record=record, rows=rows)

    return aggregate
