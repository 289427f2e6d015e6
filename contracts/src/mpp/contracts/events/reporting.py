"""Reporting events: one MPP site's aggregated day for the national roll-up.

A ``DailySummaryPublished`` holds counts and sums only, never personal data. Everything in it is
additive, so an aggregator can add sites, kab/kota, provinces and days together and recompute every
metric exactly: IKM from per-unsur score sums and answer counts (see :func:`ikm`), SLA compliance
from finished and within-SLA counts, mean times from sums and counts, and percentiles approximately
from fixed histograms. The topic is compacted on ``<site>:<date>``: a republished day (a higher
``revision``) replaces the earlier one, never adds to it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mpp.contracts.envelope import EventPayload, event
from mpp.contracts.events.common import (
    AgencyCode,
    Code,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    KabKotaCode,
    ProvinceCode,
    ServiceTypeCode,
    SkmElement,
)
from mpp.contracts.topics import REPORTING_DAILY_SUMMARIES

DOMAIN = "reporting"

WAITING_BUCKETS_SECONDS: tuple[int, ...] = (300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)
"""Default upper bounds (inclusive) of the waiting-time histogram; one more bucket holds the rest."""

SERVICE_BUCKETS_SECONDS: tuple[int, ...] = (120, 300, 600, 900, 1200, 1800, 2700, 3600)
"""Default upper bounds (inclusive) of the service-time histogram; one more bucket holds the rest."""

_COUNT = Field(default=0, ge=0)


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class HourHistogram(_Part):
    """The part of a duration histogram that falls in one local hour of the day, sparse: the indices of its
    non-empty buckets and their counts."""

    hour: int = Field(ge=0, le=23, description="Local hour of the day (0..23) the ticket was issued.")
    buckets: tuple[int, ...] = Field(
        description="Indices into the histogram's buckets (0 .. number of bounds), strictly increasing."
    )
    counts: tuple[int, ...] = Field(description="Count of each of those buckets (positive).")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.buckets) != len(self.counts):
            raise ValueError("an hour's buckets and counts must have the same length")
        if list(self.buckets) != sorted(set(self.buckets)) or any(b < 0 for b in self.buckets):
            raise ValueError("an hour's buckets must be strictly increasing indices")
        if any(n <= 0 for n in self.counts):
            raise ValueError("an hour's counts must be positive")
        return self


class DurationTotals(_Part):
    """Additive totals of a duration: count, sum and a histogram over the summary's bucket bounds."""

    count: int = _COUNT
    sum_seconds: int = Field(default=0, ge=0)
    histogram: tuple[int, ...] = Field(
        default=(),
        description="Counts per bucket, one more than the bucket bounds (the last holds longer durations); "
        "empty when count is 0.",
    )
    by_hour: tuple[HourHistogram, ...] = Field(
        default=(),
        description="The histogram split by the local hour the ticket was issued (D1, D2 by hour of day): "
        "per bucket, the hours add up to the histogram. Empty when count is 0 or the producer does not "
        "give it.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.histogram and sum(self.histogram) != self.count:
            raise ValueError("histogram counts must add up to count")
        if any(n < 0 for n in self.histogram):
            raise ValueError("histogram counts must not be negative")
        if self.count and not self.histogram:
            raise ValueError("a non-empty duration total needs its histogram")
        if self.by_hour:
            _unique("by_hour", [h.hour for h in self.by_hour])
            summed = [0] * len(self.histogram)
            for h in self.by_hour:
                for bucket, n in zip(h.buckets, h.counts, strict=True):
                    if bucket >= len(summed):
                        raise ValueError("an hour's bucket lies outside the histogram")
                    summed[bucket] += n
            if tuple(summed) != self.histogram:
                raise ValueError("the hours' counts must add up to the histogram")
        return self


class SkmElementTotal(_Part):
    """Sum of scores and number of valid answers for one SKM element."""

    element: SkmElement
    answers: int = Field(ge=0, description="Valid answers (1..4) for this element.")
    score_sum: int = Field(ge=0, description="Sum of those answers.")

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        if not self.answers <= self.score_sum <= 4 * self.answers:
            raise ValueError(f"{self.element.value}: score_sum must lie between answers and 4 x answers")
        return self


class SkmTotals(_Part):
    """SKM survey totals: respondents and, per element, score sum and answer count."""

    respondents: int = _COUNT
    elements: tuple[SkmElementTotal, ...] = Field(default=(), description="At most one entry per element.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen = [e.element for e in self.elements]
        if len(seen) != len(set(seen)):
            raise ValueError("each SKM element appears at most once")
        if any(e.answers > self.respondents for e in self.elements):
            raise ValueError("an element cannot have more answers than respondents")
        return self


class PriorityTickets(_Part):
    """Tickets served in a priority queue, per group (M9)."""

    lansia: int = _COUNT
    disabilitas: int = _COUNT
    ibu_hamil: int = _COUNT
    anak: int = _COUNT
    korban_bencana: int = _COUNT


class ChannelTotals(_Part):
    """Counts per channel the citizen came through (M3, M8)."""

    walk_in: int = _COUNT
    online: int = Field(default=0, ge=0, description="Booked online on the MPP's site.")
    mpp_digital: int = Field(default=0, ge=0, description="Booked in MPP Digital.")

    @property
    def total(self) -> int:
        return self.walk_in + self.online + self.mpp_digital


class ServiceDayTotals(_Part):
    """One service type's day at the site."""

    agency: AgencyCode
    service_type: ServiceTypeCode
    visitors: int = Field(
        default=0,
        ge=0,
        description="Distinct visits with a ticket for this service. Not additive across services: use the "
        "site's visitors for the site.",
    )
    tickets_issued: int = _COUNT
    tickets_walk_in: int = _COUNT
    tickets_online: int = Field(
        default=0, ge=0, description="Tickets from appointments booked online on the MPP's site."
    )
    tickets_mpp_digital: int = Field(
        default=0, ge=0, description="Tickets from appointments booked in MPP Digital."
    )
    tickets_served: int = _COUNT
    tickets_no_show: int = _COUNT
    tickets_cancelled: int = _COUNT
    tickets_transferred_out: int = _COUNT
    tickets_transferred_in: int = Field(
        default=0, ge=0, description="Of the tickets issued, those issued on a transfer from another service."
    )
    tickets_issued_by_hour: tuple[int, ...] = Field(
        default=(),
        description="Tickets issued by local hour, 24 entries from 00:00 adding up to tickets_issued; "
        "empty when none were issued or the producer does not give them.",
    )
    priority_tickets: PriorityTickets = Field(default_factory=PriorityTickets)
    priority_issued: PriorityTickets = Field(
        default_factory=PriorityTickets, description="Tickets issued in a priority queue, per group (M9)."
    )
    appointments_booked: int = _COUNT
    appointments_checked_in: int = _COUNT
    applications_submitted: int = _COUNT
    applications_by_channel: ChannelTotals | None = Field(
        default=None,
        description="Applications submitted per channel, adding up to applications_submitted (M8); none "
        "when the producer does not give them.",
    )
    applications_finished: int = Field(
        default=0, ge=0, description="Applications finished (issued or rejected)."
    )
    applications_finished_within_sla: int = Field(
        default=0, ge=0, description="Of those, finished within the published service standard (M5)."
    )
    applications_with_sla_outcome: int | None = Field(
        default=None,
        ge=0,
        description="Of the applications finished, those whose SLA outcome is known (M5's base); none when "
        "the producer does not give it (then every permit and document issued counts as known).",
    )
    applications_working_days_count: int = Field(
        default=0, ge=0, description="Civil registry documents issued with their working days stated (M5)."
    )
    applications_working_days_sum: int = Field(
        default=0, ge=0, description="Sum of those working days from submission to issue."
    )
    permits_issued: int = Field(default=0, ge=0, description="Permits and NIB issued (M10).")
    documents_issued: int = Field(default=0, ge=0, description="Civil registry documents issued.")
    waiting: DurationTotals = Field(default_factory=DurationTotals, description="Issue to first call (D1).")
    service: DurationTotals = Field(
        default_factory=DurationTotals, description="Start to end of service (D2)."
    )
    skm: SkmTotals = Field(default_factory=SkmTotals)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.applications_finished_within_sla > self.applications_finished:
            raise ValueError(f"{self.service_type}: more applications within SLA than finished")
        if self.tickets_walk_in + self.tickets_online + self.tickets_mpp_digital != self.tickets_issued:
            raise ValueError(f"{self.service_type}: tickets per channel must add up to tickets_issued")
        if self.tickets_transferred_in > self.tickets_issued:
            raise ValueError(f"{self.service_type}: more tickets transferred in than issued")
        if self.tickets_issued_by_hour and (
            len(self.tickets_issued_by_hour) != 24
            or any(n < 0 for n in self.tickets_issued_by_hour)
            or sum(self.tickets_issued_by_hour) != self.tickets_issued
        ):
            raise ValueError(
                f"{self.service_type}: tickets_issued_by_hour must hold 24 non-negative counts adding up to "
                "tickets_issued"
            )
        channels = self.applications_by_channel
        if channels is not None and channels.total != self.applications_submitted:
            raise ValueError(f"{self.service_type}: applications per channel must add up to the submitted")
        known = self.applications_with_sla_outcome
        if (
            known is not None
            and not self.applications_finished_within_sla <= known <= self.applications_finished
        ):
            raise ValueError(
                f"{self.service_type}: applications with an SLA outcome must lie between those within SLA "
                "and those finished"
            )
        if self.applications_working_days_count > self.applications_finished:
            raise ValueError(f"{self.service_type}: more applications with working days than finished")
        return self


class AgencyDayTotals(_Part):
    """One agency's counters on the day (D3, M1 active booths)."""

    agency: AgencyCode
    counters_planned: int = _COUNT
    counters_opened: int = _COUNT
    counter_open_seconds: int = Field(
        default=0, ge=0, description="Sum over counters of the time they were open."
    )


class ComplaintDayTotals(_Part):
    """Complaints on the day for one (agency, service type, channel, category, class) (M7)."""

    agency: AgencyCode | None = Field(
        default=None, description="Agency disposed to; none for the MPP management."
    )
    service_type: ServiceTypeCode | None = Field(
        default=None,
        description="Service type the complaint concerns as its events state it; none when they do not (a "
        "response never does) or the producer keeps complaints per agency only.",
    )
    channel: ComplaintChannel
    category: ComplaintCategory
    complaint_class: ComplaintClass
    received: int = _COUNT
    anonymous: int = Field(default=0, ge=0, description="Of those received, the anonymous ones.")
    responded: int = _COUNT
    responded_within_limit: int = _COUNT
    response_working_days_sum: int = Field(
        default=0, ge=0, description="Sum of working days to first response."
    )
    resolved: int = _COUNT
    resolved_within_limit: int = _COUNT
    resolution_working_days_sum: int = Field(
        default=0, ge=0, description="Sum of working days to resolution."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.responded_within_limit > self.responded or self.resolved_within_limit > self.resolved:
            raise ValueError("within-limit counts cannot exceed the counts they belong to")
        if self.anonymous > self.received:
            raise ValueError("anonymous complaints cannot exceed those received")
        return self


def summary_key(site: str, day: date) -> str:
    """The record key (and envelope subject) of a site's day: ``<site>:<YYYY-MM-DD>``."""
    return f"{site}:{day.isoformat()}"


@event("DailySummaryPublished", 1, topic=REPORTING_DAILY_SUMMARIES, domain=DOMAIN)
class DailySummaryPublishedV1(EventPayload):
    """One MPP site's aggregated day, for the national roll-up. It replaces any earlier revision of the
    same site and day. All counts are additive across sites and days except where a field says not."""

    site: Code = Field(description="MPP site code.")
    kabkota: KabKotaCode
    province: ProvinceCode
    day: date = Field(description="The local calendar day summarised.")
    timezone: str = Field(description="IANA timezone of the site that defines the day, e.g. Asia/Jakarta.")
    revision: int = Field(ge=1, description="Increases with every republication; keep the highest.")
    final: bool = Field(
        description="The day is closed; a provisional summary (false) is published during the day."
    )
    generated_at: AwareDatetime
    visitors: int = Field(ge=0, description="Distinct visits to the site (M3).")
    visitors_by_hour: tuple[int, ...] = Field(
        description="Visits by local starting hour, 24 entries from 00:00; they add up to visitors."
    )
    visitors_by_channel: ChannelTotals | None = Field(
        default=None,
        description="Visits per channel, adding up to visitors (M3); none when the producer does not give "
        "them.",
    )
    waiting_buckets_seconds: tuple[int, ...] = Field(
        default=WAITING_BUCKETS_SECONDS, description="Upper bounds of the waiting-time histograms."
    )
    service_buckets_seconds: tuple[int, ...] = Field(
        default=SERVICE_BUCKETS_SECONDS, description="Upper bounds of the service-time histograms."
    )
    services: tuple[ServiceDayTotals, ...] = Field(
        description="One entry per (agency, service type) with activity."
    )
    agencies: tuple[AgencyDayTotals, ...] = Field(
        default=(), description="One entry per agency with counters."
    )
    complaints: tuple[ComplaintDayTotals, ...] = Field(
        default=(),
        description="One entry per complaint group (agency, service type, channel, category, class).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.visitors_by_hour) != 24 or any(n < 0 for n in self.visitors_by_hour):
            raise ValueError("visitors_by_hour must hold 24 non-negative counts")
        if sum(self.visitors_by_hour) != self.visitors:
            raise ValueError("visitors_by_hour must add up to visitors")
        if self.visitors_by_channel is not None and self.visitors_by_channel.total != self.visitors:
            raise ValueError("visitors_by_channel must add up to visitors")
        for name, bounds in (
            ("waiting", self.waiting_buckets_seconds),
            ("service", self.service_buckets_seconds),
        ):
            if not bounds or list(bounds) != sorted(set(bounds)):
                raise ValueError(f"{name}_buckets_seconds must be strictly increasing")
        _unique("services", [(s.agency, s.service_type) for s in self.services])
        _unique("agencies", [a.agency for a in self.agencies])
        _unique(
            "complaints",
            [(c.agency, c.service_type, c.channel, c.category, c.complaint_class) for c in self.complaints],
        )
        for s in self.services:
            for totals, bounds in (
                (s.waiting, self.waiting_buckets_seconds),
                (s.service, self.service_buckets_seconds),
            ):
                if totals.histogram and len(totals.histogram) != len(bounds) + 1:
                    raise ValueError(
                        f"{s.service_type}: a histogram needs one entry more than its bucket bounds"
                    )
        return self


def _unique(name: str, keys: Iterable[Hashable]) -> None:
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    if duplicates:
        raise ValueError(f"{name} has duplicate entries: {duplicates}")


# --- IKM: recomputed exactly from additive totals ---------------------------------------------


class IkmGrade(StrEnum):
    """Service quality grade from the IKM index (PermenPANRB 14/2017)."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def label(self) -> str:
        return {"A": "Sangat Baik", "B": "Baik", "C": "Kurang Baik", "D": "Tidak Baik"}[self.value]


IKM_GRADE_LOWER_BOUNDS: tuple[tuple[Decimal, IkmGrade], ...] = (
    (Decimal("88.31"), IkmGrade.A),
    (Decimal("76.61"), IkmGrade.B),
    (Decimal("65.00"), IkmGrade.C),
)


def _round2(value: Fraction) -> Decimal:
    """Round half up to two decimals, exactly."""
    return Decimal(math.floor(value * 100 + Fraction(1, 2))).scaleb(-2)


def merge_skm(totals: Iterable[SkmTotals]) -> SkmTotals:
    """Add SKM totals of several services, sites or days."""
    respondents = 0
    answers: Counter[SkmElement] = Counter()
    sums: Counter[SkmElement] = Counter()
    for t in totals:
        respondents += t.respondents
        for e in t.elements:
            answers[e.element] += e.answers
            sums[e.element] += e.score_sum
    return SkmTotals(
        respondents=respondents,
        elements=tuple(
            SkmElementTotal(element=e, answers=answers[e], score_sum=sums[e])
            for e in SkmElement
            if answers[e]
        ),
    )


def element_index(total: SkmElementTotal) -> Decimal | None:
    """25 x NRR of one element, rounded to two decimals; none without answers."""
    if not total.answers:
        return None
    return _round2(Fraction(25 * total.score_sum, total.answers))


def ikm(totals: SkmTotals) -> Decimal | None:
    """The IKM index (25..100) rounded to two decimals, or none unless all nine elements have answers.

    IKM = 25 x (NRR_1 + ... + NRR_9) / 9 with the exact weight 1/9, computed in fractions so that
    totals added from many sites give the same index as the raw answers.
    """
    by_element = {e.element: e for e in totals.elements if e.answers}
    if len(by_element) != len(SkmElement):
        return None
    nrr_sum = sum((Fraction(e.score_sum, e.answers) for e in by_element.values()), Fraction(0))
    return _round2(Fraction(25, 9) * nrr_sum)


def ikm_grade(index: Decimal) -> IkmGrade:
    """The grade of an IKM index already rounded to two decimals (lower bounds only)."""
    for lower, grade in IKM_GRADE_LOWER_BOUNDS:
        if index >= lower:
            return grade
    return IkmGrade.D
