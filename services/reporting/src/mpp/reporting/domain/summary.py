"""The national roll-up: one site's day as a ``DailySummaryPublished``, and back into additive rows.

A site deployment builds each day's summary from its read models (:func:`build_summary`); a national
deployment turns the latest revision of each site's day into rows shaped like the local read models
(:func:`national_rows`), so the same formulas compute national figures from both.

Duration histograms travel losslessly: the summary's bucket bounds are the edges of every non-empty
10-second bucket of the site's day (``10b - 1`` and ``10b + 9``), so each non-empty summary bucket
is exactly one local bucket and the national percentiles keep the local error bound (9 seconds).
Summaries published with coarser bounds (other producers, the contract's defaults) are mapped to the
10-second bucket of their upper bound, which never reports a value below the exact one; the widest
such bucket sets the error bound stated with the figure.

Every figure of the metric catalogue travels, so national figures of summary-only sites equal the
sites' own: besides the day's totals, visits and applications per channel, tickets issued and the
duration histograms per local hour (sparse), and complaints per service type. Summaries of earlier
producers lack these optional fields: their sites then count without them (and M5 counts every issued
permit or document of theirs as having a known SLA outcome, since rejections never have one).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from mpp.contracts.events.common import ComplaintCategory, ComplaintChannel, ComplaintClass, SkmElement
from mpp.contracts.events.reporting import (
    AgencyDayTotals,
    ChannelTotals,
    ComplaintDayTotals,
    DailySummaryPublishedV1,
    DurationTotals,
    HourHistogram,
    PriorityTickets,
    ServiceDayTotals,
    SkmElementTotal,
    SkmTotals,
)
from mpp.reporting.domain.facts import COMPLAINT_JOINT_PREFIX, NONE, SERVICE, WAITING
from mpp.reporting.domain.percentiles import (
    BUCKET_SECONDS,
    CAP_SECONDS,
    MAX_ERROR_SECONDS,
    OVERFLOW_BUCKET,
    bucket_of,
    bucket_upper,
)

PRIORITY_GROUPS = ("lansia", "disabilitas", "ibu_hamil", "anak", "korban_bencana")
CHANNELS = ("walk_in", "online", "mpp_digital")

# Complaint figures per (channel, category, class) as the projector keeps them (see facts.complaint_measure).
_JOINT_FIELDS = {
    "rcv": "received",
    "rsp": "responded",
    "rspok": "responded_within_limit",
    "rspd": "response_working_days_sum",
    "res": "resolved",
    "resok": "resolved_within_limit",
    "resd": "resolution_working_days_sum",
    "anon": "anonymous",
}


# --- rows read from the local read models ---------------------------------------------------------


class FactRow(NamedTuple):
    agency: str
    service_type: str
    measure: str
    value: int


class HistogramRow(NamedTuple):
    agency: str
    service_type: str
    kind: str
    bucket: int
    total: int
    hour: int | None = None
    """The local hour of the day; none for a row summed over the hours."""


class HourRow(NamedTuple):
    agency: str
    service_type: str
    hour: int
    measure: str
    value: int


@dataclass(frozen=True, slots=True)
class SiteMeta:
    code: str
    kabkota: str
    province: str
    timezone: str


_SERVICE_COUNTS = (
    "tickets_issued",
    "tickets_walk_in",
    "tickets_online",
    "tickets_mpp_digital",
    "tickets_served",
    "tickets_no_show",
    "tickets_cancelled",
    "tickets_transferred_in",
    "appointments_booked",
    "appointments_checked_in",
    "applications_submitted",
    "applications_finished",
    "permits_issued",
    "documents_issued",
)
_SERVICE_MEASURES = frozenset(
    {
        *_SERVICE_COUNTS,
        "applications_within_sla",
        "applications_sla_known",
        "applications_working_days_count",
        "applications_working_days_sum",
        *(f"applications_{c}" for c in CHANNELS),
        "waiting_count",
        "waiting_seconds_sum",
        "service_count",
        "service_seconds_sum",
        "skm_respondents",
        *(f"priority_served_{g}" for g in PRIORITY_GROUPS),
        *(f"priority_issued_{g}" for g in PRIORITY_GROUPS),
        *(f"skm_{e.value.lower()}_{part}" for e in SkmElement for part in ("answers", "sum")),
    }
)


RESOLUTIONS_SECONDS = (10, 60, 300)
"""Bucket widths a summary's histograms may use: 10 seconds (the local buckets, lossless) unless the
summary would grow too large for one Kafka record, then 60 or 300 (their error bound is width - 1)."""


def _lower(bucket: int, resolution: int) -> int:
    """The first second of the ``resolution``-wide bucket holding a 10-second bucket."""
    return bucket * BUCKET_SECONDS // resolution * resolution


def histogram_bounds(
    histograms: Iterable[Mapping[int, int]], resolution: int = BUCKET_SECONDS
) -> tuple[int, ...]:
    """Bucket bounds holding every non-empty ``resolution``-wide bucket of ``histograms`` exactly (each
    between its own edges, so empty stretches cost one bucket)."""
    bounds: set[int] = set()
    for histogram in histograms:
        for bucket, count in histogram.items():
            if count <= 0:
                continue
            if bucket >= OVERFLOW_BUCKET:
                bounds.add(CAP_SECONDS - 1)
                continue
            lower = _lower(bucket, resolution)
            if lower > 0:
                bounds.add(lower - 1)
            bounds.add(lower + resolution - 1)
    return tuple(sorted(bounds))


def encode_histogram(
    histogram: Mapping[int, int], bounds: tuple[int, ...], resolution: int = BUCKET_SECONDS
) -> tuple[int, ...]:
    """Counts per summary bucket (``len(bounds) + 1`` entries) of a 10-second histogram."""
    counts = [0] * (len(bounds) + 1)
    for slot, count in _slots(histogram, {upper: i for i, upper in enumerate(bounds)}, resolution).items():
        counts[slot] += count
    return tuple(counts)


def _slots(histogram: Mapping[int, int], index: Mapping[int, int], resolution: int) -> Counter[int]:
    """The non-empty summary buckets of a 10-second histogram, by their index (``index``: upper bound ->
    index; the overflow bucket is the one after the last bound)."""
    slots: Counter[int] = Counter()
    for bucket, count in histogram.items():
        if count <= 0:
            continue
        if bucket >= OVERFLOW_BUCKET:
            slots[len(index)] += count
        else:
            slots[index[_lower(bucket, resolution) + resolution - 1]] += count
    return slots


def _by_hour(
    hours: Mapping[int, Mapping[int, int]], bounds: tuple[int, ...], resolution: int
) -> tuple[HourHistogram, ...]:
    """Each hour's 10-second histogram as the sparse counts of the summary's buckets."""
    index = {upper: i for i, upper in enumerate(bounds)}
    out = []
    for hour, histogram in sorted(hours.items()):
        slots = _slots(histogram, index, resolution)
        if slots:
            ordered = sorted(slots)
            out.append(
                HourHistogram(hour=hour, buckets=tuple(ordered), counts=tuple(slots[i] for i in ordered))
            )
    return tuple(out)


def _durations(
    totals: Mapping[str, int],
    kind: str,
    histogram: Mapping[int, int],
    hours: Mapping[int, Mapping[int, int]] | None,
    bounds: tuple[int, ...],
    resolution: int,
) -> DurationTotals:
    """A service's duration totals; ``hours`` (hour -> 10-second histogram) adds the split by hour."""
    count = totals.get(f"{kind}_count", 0)
    if not count:
        return DurationTotals()
    encoded = encode_histogram(histogram, bounds, resolution)
    by_hour = _by_hour(hours, bounds, resolution) if hours else ()
    summed = [0] * len(encoded)
    for h in by_hour:
        for slot, n in zip(h.buckets, h.counts, strict=True):
            summed[slot] += n
    if tuple(summed) != encoded:
        by_hour = ()  # not every row of the day has its hour: the day's totals only
    return DurationTotals(
        count=count,
        sum_seconds=totals.get(f"{kind}_seconds_sum", 0),
        histogram=encoded,
        by_hour=by_hour,
    )


def _skm(totals: Mapping[str, int]) -> SkmTotals:
    elements = []
    for element in SkmElement:
        code = element.value.lower()
        answers = totals.get(f"skm_{code}_answers", 0)
        if answers:
            elements.append(
                SkmElementTotal(element=element, answers=answers, score_sum=totals.get(f"skm_{code}_sum", 0))
            )
    return SkmTotals(respondents=totals.get("skm_respondents", 0), elements=tuple(elements))


def _complaints(facts: Iterable[FactRow]) -> tuple[ComplaintDayTotals, ...]:
    groups: dict[tuple[str, str, str, str, str], Counter[str]] = defaultdict(Counter)
    for row in facts:
        if not row.measure.startswith(COMPLAINT_JOINT_PREFIX) or not row.value:
            continue
        code, channel, category, complaint_class = row.measure[len(COMPLAINT_JOINT_PREFIX) :].split(":")
        key = (row.agency, row.service_type, channel, category, complaint_class)
        groups[key][_JOINT_FIELDS[code]] += row.value
    return tuple(
        ComplaintDayTotals(
            agency=agency or None,
            service_type=service_type or None,
            channel=ComplaintChannel(channel),
            category=ComplaintCategory(category),
            complaint_class=ComplaintClass(complaint_class),
            **counts,
        )
        for (agency, service_type, channel, category, complaint_class), counts in sorted(groups.items())
        if any(counts.values())
    )


def _channels(totals: Mapping[str, int], prefix: str, total: int) -> ChannelTotals | None:
    """Counts per channel, or none unless they add up to ``total`` (read models that lack them)."""
    channels = ChannelTotals(**{c: totals.get(f"{prefix}_{c}", 0) for c in CHANNELS})
    return channels if channels.total == total else None


def _tickets_by_hour(rows: Iterable[HourRow], issued: int) -> tuple[int, ...]:
    hours = [0] * 24
    for row in rows:
        hours[row.hour] += row.value
    # Empty unless the hours hold every ticket of the day (a service without tickets needs none).
    return tuple(hours) if issued and sum(hours) == issued else ()


def build_summary(
    site: SiteMeta,
    day: date,
    *,
    revision: int,
    final: bool,
    generated_at: datetime,
    facts: Iterable[FactRow],
    visits_by_hour: Mapping[int, int],
    histograms: Iterable[HistogramRow],
    hourly: Iterable[HourRow] = (),
    resolution: int = BUCKET_SECONDS,
    hours: bool = True,
) -> DailySummaryPublishedV1:
    """One site's day from its read-model rows (facts, hourly visits, histograms per hour or summed over
    the hours, hourly tickets issued), its duration histograms in buckets ``resolution`` seconds wide
    (one of :data:`RESOLUTIONS_SECONDS`). Without ``hours`` it leaves out the split by hour of tickets
    and durations (a smaller summary)."""
    facts = list(facts)
    by_key: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in facts:
        by_key[(row.agency, row.service_type)][row.measure] += row.value
    hist: dict[tuple[str, str, str], Counter[int]] = defaultdict(Counter)
    hist_hours: dict[tuple[str, str, str], dict[int, Counter[int]]] = defaultdict(dict)
    for h in histograms:
        hist[(h.agency, h.service_type, h.kind)][h.bucket] += h.total
        if hours and h.hour is not None:
            hist_hours[(h.agency, h.service_type, h.kind)].setdefault(h.hour, Counter())[h.bucket] += h.total
    tickets_hourly: dict[tuple[str, str], list[HourRow]] = defaultdict(list)
    if hours:
        for r in hourly:
            if r.measure == "tickets_issued":
                tickets_hourly[(r.agency, r.service_type)].append(r)
    waiting_bounds = histogram_bounds((v for k, v in hist.items() if k[2] == WAITING), resolution)
    service_bounds = histogram_bounds((v for k, v in hist.items() if k[2] == SERVICE), resolution)
    services = []
    agencies = []
    for (agency, service_type), totals in sorted(by_key.items()):
        if NONE not in (agency, service_type):
            if not any(totals[m] for m in _SERVICE_MEASURES):
                continue
            services.append(
                ServiceDayTotals(
                    agency=agency,
                    service_type=service_type,
                    **{m: totals[m] for m in _SERVICE_COUNTS},
                    tickets_issued_by_hour=_tickets_by_hour(
                        tickets_hourly.get((agency, service_type), ()), totals["tickets_issued"]
                    ),
                    priority_tickets=PriorityTickets(
                        **{g: totals[f"priority_served_{g}"] for g in PRIORITY_GROUPS}
                    ),
                    priority_issued=PriorityTickets(
                        **{g: totals[f"priority_issued_{g}"] for g in PRIORITY_GROUPS}
                    ),
                    applications_by_channel=_channels(
                        totals, "applications", totals["applications_submitted"]
                    ),
                    applications_finished_within_sla=totals["applications_within_sla"],
                    applications_with_sla_outcome=totals["applications_sla_known"],
                    applications_working_days_count=totals["applications_working_days_count"],
                    applications_working_days_sum=totals["applications_working_days_sum"],
                    waiting=_durations(
                        totals,
                        WAITING,
                        hist.get((agency, service_type, WAITING), {}),
                        hist_hours.get((agency, service_type, WAITING)),
                        waiting_bounds,
                        resolution,
                    ),
                    service=_durations(
                        totals,
                        SERVICE,
                        hist.get((agency, service_type, SERVICE), {}),
                        hist_hours.get((agency, service_type, SERVICE)),
                        service_bounds,
                        resolution,
                    ),
                    skm=_skm(totals),
                )
            )
        elif agency != NONE and (totals["counters_opened"] or totals["counter_open_seconds"]):
            agencies.append(
                AgencyDayTotals(
                    agency=agency,
                    counters_planned=totals["counters_opened_planned"],
                    counters_opened=totals["counters_opened"],
                    counter_open_seconds=totals["counter_open_seconds"],
                )
            )
    visits = tuple(visits_by_hour.get(h, 0) for h in range(24))
    site_totals = by_key.get((NONE, NONE), Counter())
    extra: dict[str, tuple[int, ...]] = {}
    if waiting_bounds:
        extra["waiting_buckets_seconds"] = waiting_bounds
    if service_bounds:
        extra["service_buckets_seconds"] = service_bounds
    return DailySummaryPublishedV1(
        site=site.code,
        kabkota=site.kabkota,
        province=site.province,
        day=day,
        timezone=site.timezone,
        revision=revision,
        final=final,
        generated_at=generated_at,
        visitors=sum(visits),
        visitors_by_hour=visits,
        visitors_by_channel=_channels(site_totals, "visits", sum(visits)),
        **extra,
        services=tuple(services),
        agencies=tuple(agencies),
        complaints=_complaints(facts),
    )


def figures_digest(summary: DailySummaryPublishedV1) -> str:
    """A fingerprint of a summary's figures (not its revision, state or time)."""
    body = summary.model_dump_json(exclude={"revision", "final", "generated_at"})
    return hashlib.sha256(body.encode()).hexdigest()


# --- a national deployment: a summary as rows shaped like the local read models --------------------


@dataclass(slots=True)
class NationalRows:
    facts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(agency, service_type, measure) -> value."""
    hourly: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)
    """(agency, service_type, hour, measure) -> value: visits and tickets issued by local hour."""
    histogram: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)
    """(agency, service_type, kind, 10-second bucket) -> count."""
    histogram_hourly: Counter[tuple[str, str, int, str, int]] = field(default_factory=Counter)
    """(agency, service_type, hour, kind, 10-second bucket) -> count, where the summary splits by hour."""
    max_error: dict[str, int] = field(default_factory=dict)
    """Per duration kind, how far above the exact value a percentile may lie (seconds)."""


def _decode(histogram: tuple[int, ...], bounds: tuple[int, ...]) -> tuple[Counter[int], int]:
    """A summary histogram as 10-second buckets, and the largest error that mapping allows."""
    return _decode_slots(enumerate(histogram), bounds)


def _decode_slots(slots: Iterable[tuple[int, int]], bounds: tuple[int, ...]) -> tuple[Counter[int], int]:
    """(summary bucket index, count) pairs as 10-second buckets, and the largest error that mapping allows."""
    buckets: Counter[int] = Counter()
    error = MAX_ERROR_SECONDS
    for i, count in slots:
        if not count:
            continue
        lower = bounds[i - 1] + 1 if i > 0 else 0
        if i == len(bounds):
            # Open-ended: durations of at least ``lower`` seconds. Reported as the cap ("at least").
            bucket = OVERFLOW_BUCKET
            error = max(error, CAP_SECONDS - lower, 0)
        else:
            bucket = bucket_of(bounds[i])
            error = max(error, bucket_upper(bucket) - min(lower, CAP_SECONDS))
        buckets[bucket] += count
    return buckets, error


def _service_rows(out: NationalRows, s: DailySummaryPublishedV1, svc: ServiceDayTotals) -> None:
    f = out.facts
    key = (svc.agency, svc.service_type)
    for measure in _SERVICE_COUNTS:
        f[(*key, measure)] += getattr(svc, measure)
    for h, n in enumerate(svc.tickets_issued_by_hour):
        out.hourly[(*key, h, "tickets_issued")] += n
    f[(*key, "applications_within_sla")] += svc.applications_finished_within_sla
    issued = svc.permits_issued + svc.documents_issued
    known = svc.applications_with_sla_outcome
    # Earlier producers do not state it: every permit or document issued has an outcome, no rejection.
    f[(*key, "applications_sla_known")] += min(issued, svc.applications_finished) if known is None else known
    f[(*key, "applications_rejected")] += max(svc.applications_finished - issued, 0)
    f[(*key, "applications_working_days_count")] += svc.applications_working_days_count
    f[(*key, "applications_working_days_sum")] += svc.applications_working_days_sum
    if svc.applications_by_channel is not None:
        for c in CHANNELS:
            f[(*key, f"applications_{c}")] += getattr(svc.applications_by_channel, c)
    for g in PRIORITY_GROUPS:
        f[(*key, f"priority_served_{g}")] += getattr(svc.priority_tickets, g)
        f[(*key, f"priority_issued_{g}")] += getattr(svc.priority_issued, g)
    for kind, totals, bounds in (
        (WAITING, svc.waiting, s.waiting_buckets_seconds),
        (SERVICE, svc.service, s.service_buckets_seconds),
    ):
        f[(*key, f"{kind}_count")] += totals.count
        f[(*key, f"{kind}_seconds_sum")] += totals.sum_seconds
        if not totals.histogram:
            continue
        buckets, error = _decode(totals.histogram, bounds)
        for bucket, count in buckets.items():
            out.histogram[(*key, kind, bucket)] += count
        out.max_error[kind] = max(out.max_error.get(kind, MAX_ERROR_SECONDS), error)
        for hour in totals.by_hour:
            hour_buckets, _error = _decode_slots(zip(hour.buckets, hour.counts, strict=True), bounds)
            for bucket, count in hour_buckets.items():
                out.histogram_hourly[(*key, hour.hour, kind, bucket)] += count
    f[(*key, "skm_respondents")] += svc.skm.respondents
    for e in svc.skm.elements:
        f[(*key, f"skm_{e.element.value.lower()}_answers")] += e.answers
        f[(*key, f"skm_{e.element.value.lower()}_sum")] += e.score_sum


def national_rows(s: DailySummaryPublishedV1) -> NationalRows:
    """A summary as rows shaped like the local read models. The optional fields a summary lacks (an
    earlier producer's) add nothing: its site then counts without those figures."""
    out = NationalRows()
    f = out.facts
    if s.visitors:
        f[(NONE, NONE, "visits")] += s.visitors
    if s.visitors_by_channel is not None:
        for channel in CHANNELS:
            f[(NONE, NONE, f"visits_{channel}")] += getattr(s.visitors_by_channel, channel)
    for h, n in enumerate(s.visitors_by_hour):
        out.hourly[(NONE, NONE, h, "visits")] += n
    for svc in s.services:
        _service_rows(out, s, svc)
    for a in s.agencies:
        planned = min(a.counters_planned, a.counters_opened)
        f[(a.agency, NONE, "counters_opened")] += a.counters_opened
        f[(a.agency, NONE, "counters_opened_planned")] += planned
        f[(a.agency, NONE, "counters_opened_extra")] += a.counters_opened - planned
        f[(a.agency, NONE, "counter_open_seconds")] += a.counter_open_seconds
    for c in s.complaints:
        key = (c.agency or NONE, c.service_type or NONE)
        f[(*key, "complaints_received")] += c.received
        f[(*key, "complaints_anonymous")] += c.anonymous
        f[(*key, f"complaints_channel_{c.channel.value}")] += c.received
        f[(*key, f"complaints_category_{c.category.value}")] += c.received
        f[(*key, "complaints_responded")] += c.responded
        f[(*key, "complaints_responded_within_limit")] += c.responded_within_limit
        f[(*key, "complaints_response_days_sum")] += c.response_working_days_sum
        f[(*key, "complaints_resolved")] += c.resolved
        f[(*key, "complaints_resolved_within_limit")] += c.resolved_within_limit
        f[(*key, "complaints_resolution_days_sum")] += c.resolution_working_days_sum
    out.facts = Counter({k: v for k, v in f.items() if v})
    out.hourly = Counter({k: v for k, v in out.hourly.items() if v})
    return out
