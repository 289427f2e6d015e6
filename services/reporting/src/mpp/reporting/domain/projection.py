"""Turning events into additive daily counts.

A figure is keyed by (local day at the site, site, agency, service type, metric). Counts are
additive, so a batch of events folds into a few increments before touching the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.licensing import ApplicationSubmittedV1, PermitIssuedV1

APPLICATIONS_SUBMITTED = "applications_submitted"
PERMITS_ISSUED = "permits_issued"

PROJECTED_TYPES = frozenset({"ApplicationSubmitted", "PermitIssued"})

DEFAULT_TZ = ZoneInfo("Asia/Jakarta")


@dataclass(frozen=True, slots=True)
class CountKey:
    day: date
    site: str
    agency: str
    service_type: str
    metric: str


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def fold(
    envelopes: Iterable[Envelope],
    site_tz: Callable[[str], ZoneInfo],
    into: Counter[CountKey] | None = None,
) -> Counter[CountKey]:
    """Sum a batch of events into count increments, added to ``into`` when given (a batch folded a chunk
    at a time). Summed per plain tuple first: a batch has far fewer distinct keys than events."""
    summed: dict[tuple[date, str, str, str, str], int] = {}
    for env in envelopes:
        p = env.payload
        if isinstance(p, ApplicationSubmittedV1):
            key = (local_day(p.submitted_at, site_tz(env.site)), env.site, env.agency, p.service_type)
            metric = APPLICATIONS_SUBMITTED
        elif isinstance(p, PermitIssuedV1):
            key = (local_day(p.issued_at, site_tz(env.site)), env.site, env.agency, p.service_type)
            metric = PERMITS_ISSUED
        else:
            continue
        k = (*key, metric)
        summed[k] = summed.get(k, 0) + 1
    counts: Counter[CountKey] = Counter() if into is None else into
    for k, n in summed.items():
        counts[CountKey(*k)] += n
    return counts
