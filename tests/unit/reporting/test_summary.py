"""A site's day as a DailySummaryPublished built from its read models (a hand-computed fixture), and back
into national rows: exact counts, IKM totals, lossless 10-second histograms, and the error bound that
coarser summary buckets state."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import ComplaintCategory, ComplaintChannel, ComplaintClass, SkmElement
from mpp.contracts.events.queue import ComplaintReceivedV1
from mpp.contracts.events.reporting import (
    WAITING_BUCKETS_SECONDS,
    ChannelTotals,
    DailySummaryPublishedV1,
    DurationTotals,
    HourHistogram,
    PriorityTickets,
    ServiceDayTotals,
)
from mpp.reporting.domain.facts import FactKey, fold_facts
from mpp.reporting.domain.percentiles import OVERFLOW_BUCKET, bucket_of, exact_percentile, percentile
from mpp.reporting.domain.summary import (
    FactRow,
    HistogramRow,
    HourRow,
    SiteMeta,
    build_summary,
    figures_digest,
    histogram_bounds,
    national_rows,
)
from mpp.reporting.publisher import next_revision

pytestmark = pytest.mark.unit

SITE = SiteMeta("mpp-uji", "3298", "32", "Asia/Jakarta")
DAY = date(2026, 3, 2)
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

FACTS = [
    FactRow("", "", "visits", 5),
    FactRow("", "", "visits_walk_in", 4),
    FactRow("", "", "visits_mpp_digital", 1),
    FactRow("polres", "polres.skck", "tickets_issued", 4),
    FactRow("polres", "polres.skck", "tickets_walk_in", 3),
    FactRow("polres", "polres.skck", "tickets_online", 1),
    FactRow("polres", "polres.skck", "tickets_transferred_in", 1),
    FactRow("polres", "polres.skck", "priority_issued_lansia", 2),
    FactRow("polres", "polres.skck", "tickets_served", 3),
    FactRow("polres", "polres.skck", "tickets_no_show", 1),
    FactRow("polres", "polres.skck", "priority_served_lansia", 1),
    FactRow("polres", "polres.skck", "waiting_count", 3),
    FactRow("polres", "polres.skck", "waiting_seconds_sum", 95),
    FactRow("polres", "polres.skck", "service_count", 2),
    FactRow("polres", "polres.skck", "service_seconds_sum", 620),
    FactRow("polres", "polres.skck", "skm_respondents", 2),
    FactRow("polres", "polres.skck", "skm_u1_answers", 2),
    FactRow("polres", "polres.skck", "skm_u1_sum", 7),
    FactRow("polres", "polres.skck", "complaints_received", 2),
    FactRow("polres", "polres.skck", "complaints_anonymous", 1),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_submitted", 2),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_walk_in", 1),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_online", 1),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_finished", 2),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_within_sla", 1),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_sla_known", 1),
    FactRow("dpmptsp", "dpmptsp.nib", "applications_rejected", 1),
    FactRow("dpmptsp", "dpmptsp.nib", "permits_issued", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "complaints_received", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "applications_finished", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "documents_issued", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "applications_sla_known", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "applications_within_sla", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "applications_working_days_count", 1),
    FactRow("disdukcapil", "disdukcapil.kk", "applications_working_days_sum", 3),
    FactRow("polres", "", "counters_opened", 2),
    FactRow("polres", "", "counters_opened_planned", 1),
    FactRow("polres", "", "counters_opened_extra", 1),
    FactRow("polres", "", "counter_open_seconds", 3600),
    FactRow("polres", "polres.skck", "cj_rcv:whatsapp:queue:complaint", 2),
    FactRow("polres", "polres.skck", "cj_anon:whatsapp:queue:complaint", 1),
    FactRow("polres", "", "cj_rsp:whatsapp:queue:complaint", 1),
    FactRow("polres", "", "cj_rspok:whatsapp:queue:complaint", 1),
    FactRow("polres", "", "cj_rspd:whatsapp:queue:complaint", 3),
    FactRow("", "", "cj_rcv:sp4n_lapor:fees:information_request", 1),
]
# Waits of 5, 30 and 60 seconds (buckets 0, 3, 6); services of 20 and 600 seconds (buckets 2, 60);
# tickets issued at 09:00 and 10:00 local time.
HISTOGRAMS = [
    HistogramRow("polres", "polres.skck", "waiting", 0, 1, 9),
    HistogramRow("polres", "polres.skck", "waiting", 3, 1, 9),
    HistogramRow("polres", "polres.skck", "waiting", 6, 1, 10),
    HistogramRow("polres", "polres.skck", "service", 2, 1, 9),
    HistogramRow("polres", "polres.skck", "service", 60, 1, 10),
]
HOURLY = [
    HourRow("polres", "polres.skck", 9, "tickets_issued", 3),
    HourRow("polres", "polres.skck", 10, "tickets_issued", 1),
    HourRow("", "", 8, "visits", 3),
]


def _build(**overrides: object) -> DailySummaryPublishedV1:
    args: dict[str, object] = {
        "revision": 3,
        "final": False,
        "generated_at": AT,
        "facts": FACTS,
        "visits_by_hour": {8: 3, 13: 2},
        "histograms": HISTOGRAMS,
        "hourly": HOURLY,
        **overrides,
    }
    return build_summary(SITE, DAY, **args)  # type: ignore[arg-type]


def test_a_day_from_its_read_models() -> None:
    s = _build()

    assert (s.site, s.kabkota, s.province, s.day, s.timezone) == (
        "mpp-uji",
        "3298",
        "32",
        DAY,
        "Asia/Jakarta",
    )
    assert (s.revision, s.final, s.generated_at) == (3, False, AT)
    assert s.visitors == 5
    assert s.visitors_by_hour[8] == 3 and s.visitors_by_hour[13] == 2 and sum(s.visitors_by_hour) == 5
    assert s.visitors_by_channel == ChannelTotals(walk_in=4, mpp_digital=1)
    # Services with service figures only (a complaint alone makes no service entry), in code order.
    assert [(x.agency, x.service_type) for x in s.services] == [
        ("disdukcapil", "disdukcapil.kk"),
        ("dpmptsp", "dpmptsp.nib"),
        ("polres", "polres.skck"),
    ]
    kk, nib, skck = s.services
    assert (kk.documents_issued, kk.applications_with_sla_outcome) == (1, 1)
    assert (kk.applications_working_days_count, kk.applications_working_days_sum) == (1, 3)
    assert (nib.applications_submitted, nib.applications_finished) == (2, 2)
    assert (nib.applications_finished_within_sla, nib.permits_issued) == (1, 1)
    assert nib.applications_with_sla_outcome == 1
    assert nib.applications_by_channel == ChannelTotals(walk_in=1, online=1)
    assert nib.waiting == DurationTotals() and nib.service == DurationTotals()
    assert nib.tickets_issued_by_hour == ()
    assert skck.tickets_transferred_in == 1 and skck.priority_issued == PriorityTickets(lansia=2)
    assert skck.tickets_issued_by_hour == (0,) * 9 + (3, 1) + (0,) * 13
    assert (skck.tickets_issued, skck.tickets_walk_in, skck.tickets_online, skck.tickets_mpp_digital) == (
        4,
        3,
        1,
        0,
    )
    assert (skck.tickets_served, skck.tickets_no_show, skck.priority_tickets.lansia) == (3, 1, 1)
    assert skck.skm.respondents == 2
    assert [(e.element, e.answers, e.score_sum) for e in skck.skm.elements] == [(SkmElement.U1, 2, 7)]
    # Each non-empty 10-second bucket becomes one summary bucket between its own edges.
    assert s.waiting_buckets_seconds == (9, 29, 39, 59, 69)
    # Per hour of issue, the indices of the non-empty summary buckets and their counts.
    assert skck.waiting == DurationTotals(
        count=3,
        sum_seconds=95,
        histogram=(1, 0, 1, 0, 1, 0),
        by_hour=(
            HourHistogram(hour=9, buckets=(0, 2), counts=(1, 1)),
            HourHistogram(hour=10, buckets=(4,), counts=(1,)),
        ),
    )
    assert s.service_buckets_seconds == (19, 29, 599, 609)
    assert skck.service == DurationTotals(
        count=2,
        sum_seconds=620,
        histogram=(0, 1, 0, 1, 0),
        by_hour=(
            HourHistogram(hour=9, buckets=(1,), counts=(1,)),
            HourHistogram(hour=10, buckets=(3,), counts=(1,)),
        ),
    )
    assert [
        (a.agency, a.counters_planned, a.counters_opened, a.counter_open_seconds) for a in s.agencies
    ] == [("polres", 1, 2, 3600)]
    # Complaints per service type where their events state one (a response never does).
    assert [
        (
            c.agency,
            c.service_type,
            c.channel,
            c.category,
            c.complaint_class,
            c.received,
            c.anonymous,
            c.responded,
            c.responded_within_limit,
        )
        for c in s.complaints
    ] == [
        (
            None,
            None,
            ComplaintChannel.SP4N_LAPOR,
            ComplaintCategory.FEES,
            ComplaintClass.INFORMATION_REQUEST,
            1,
            0,
            0,
            0,
        ),
        (
            "polres",
            None,
            ComplaintChannel.WHATSAPP,
            ComplaintCategory.QUEUE,
            ComplaintClass.COMPLAINT,
            0,
            0,
            1,
            1,
        ),
        (
            "polres",
            "polres.skck",
            ComplaintChannel.WHATSAPP,
            ComplaintCategory.QUEUE,
            ComplaintClass.COMPLAINT,
            2,
            1,
            0,
            0,
        ),
    ]
    assert s.complaints[1].response_working_days_sum == 3


def test_the_summary_comes_back_as_the_local_facts_it_was_built_from() -> None:
    rows = national_rows(_build())

    f = rows.facts
    assert f[("", "", "visits")] == 5
    assert (f[("", "", "visits_walk_in")], f[("", "", "visits_mpp_digital")]) == (4, 1)
    assert rows.hourly == Counter(
        {
            ("", "", 8, "visits"): 3,
            ("", "", 13, "visits"): 2,
            ("polres", "polres.skck", 9, "tickets_issued"): 3,
            ("polres", "polres.skck", 10, "tickets_issued"): 1,
        }
    )
    for measure in (
        "tickets_issued",
        "tickets_walk_in",
        "tickets_online",
        "tickets_served",
        "tickets_no_show",
        "tickets_transferred_in",
        "priority_issued_lansia",
    ):
        assert (
            f[("polres", "polres.skck", measure)]
            == dict(((r.agency, r.service_type, r.measure), r.value) for r in FACTS)[
                ("polres", "polres.skck", measure)
            ]
        )
    assert f[("polres", "polres.skck", "priority_served_lansia")] == 1
    assert (f[("polres", "polres.skck", "skm_u1_answers")], f[("polres", "polres.skck", "skm_u1_sum")]) == (
        2,
        7,
    )
    assert f[("polres", "polres.skck", "waiting_seconds_sum")] == 95
    # M5: one issued with a known outcome, one rejection without.
    nib = ("dpmptsp", "dpmptsp.nib")
    assert [f[(*nib, m)] for m in ("applications_finished", "applications_within_sla")] == [2, 1]
    assert [f[(*nib, m)] for m in ("applications_sla_known", "applications_rejected")] == [1, 1]
    assert [f[(*nib, m)] for m in ("applications_walk_in", "applications_online")] == [1, 1]
    kk = ("disdukcapil", "disdukcapil.kk")
    assert [f[(*kk, m)] for m in ("applications_working_days_count", "applications_working_days_sum")] == [
        1,
        3,
    ]
    assert [
        f[("polres", "", m)] for m in ("counters_opened", "counters_opened_planned", "counters_opened_extra")
    ] == [
        2,
        1,
        1,
    ]
    assert f[("polres", "polres.skck", "complaints_received")] == 2
    assert f[("polres", "polres.skck", "complaints_anonymous")] == 1
    assert f[("polres", "polres.skck", "complaints_channel_whatsapp")] == 2
    assert f[("polres", "", "complaints_responded")] == 1
    assert f[("", "", "complaints_category_fees")] == 1
    assert f[("polres", "", "complaints_response_days_sum")] == 3
    assert all(v > 0 for v in f.values())
    # The histograms come back exactly, with the local error bound.
    assert rows.histogram == Counter(
        {
            ("polres", "polres.skck", "waiting", 0): 1,
            ("polres", "polres.skck", "waiting", 3): 1,
            ("polres", "polres.skck", "waiting", 6): 1,
            ("polres", "polres.skck", "service", 2): 1,
            ("polres", "polres.skck", "service", 60): 1,
        }
    )
    assert rows.histogram_hourly == Counter(
        {
            ("polres", "polres.skck", 9, "waiting", 0): 1,
            ("polres", "polres.skck", 9, "waiting", 3): 1,
            ("polres", "polres.skck", 10, "waiting", 6): 1,
            ("polres", "polres.skck", 9, "service", 2): 1,
            ("polres", "polres.skck", 10, "service", 60): 1,
        }
    )
    assert rows.max_error == {"waiting": 9, "service": 9}


def test_a_summary_without_the_optional_figures_adds_none_of_them() -> None:
    """An earlier producer's summary: no channels, hours, transfers, priority issued, working days or
    complaint service types; M5 counts every issued permit or document as having an SLA outcome."""
    # As an earlier producer wrote it: none of the optional fields added since.
    service = {
        "agency": "dpmptsp",
        "service_type": "dpmptsp.nib",
        "tickets_issued": 2,
        "tickets_walk_in": 2,
        "applications_submitted": 3,
        "applications_finished": 3,
        "applications_finished_within_sla": 1,
        "permits_issued": 2,
        "waiting": {"count": 2, "sum_seconds": 40, "histogram": [2, 0]},
    }
    summary = DailySummaryPublishedV1.model_validate(
        {
            "site": "mpp-lama",
            "kabkota": "6471",
            "province": "64",
            "day": DAY,
            "timezone": "Asia/Makassar",
            "revision": 1,
            "final": True,
            "generated_at": AT,
            "visitors": 2,
            "visitors_by_hour": (0,) * 9 + (2,) + (0,) * 14,
            "waiting_buckets_seconds": (29,),
            "services": [service],
            "complaints": [
                {
                    "agency": "dpmptsp",
                    "channel": "counter",
                    "category": "fees",
                    "complaint_class": "complaint",
                    "received": 1,
                }
            ],
        }
    )
    rows = national_rows(summary)

    measures = {m for (_a, _st, m) in rows.facts}
    assert not measures & {
        "visits_walk_in",
        "applications_walk_in",
        "tickets_transferred_in",
        "priority_issued_lansia",
        "applications_working_days_count",
        "complaints_anonymous",
    }
    assert rows.facts[("dpmptsp", "dpmptsp.nib", "applications_sla_known")] == 2
    assert rows.facts[("dpmptsp", "", "complaints_received")] == 1
    assert rows.hourly == Counter({("", "", 9, "visits"): 2})
    assert rows.histogram_hourly == Counter()
    assert sum(rows.histogram.values()) == 2


def test_without_hours_or_when_rows_lack_them_a_summary_carries_the_days_totals_only() -> None:
    for summary in (
        _build(hours=False),
        _build(histograms=[h._replace(hour=None) for h in HISTOGRAMS], hourly=[]),
    ):
        skck = summary.services[-1]
        assert skck.waiting.by_hour == () and skck.service.by_hour == ()
        assert skck.waiting.histogram == (1, 0, 1, 0, 1, 0)
        assert skck.tickets_issued_by_hour == ()
        rows = national_rows(summary)
        assert rows.histogram_hourly == Counter()
        assert not [k for k in rows.hourly if k[3] == "tickets_issued"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_through_a_summary_equal_the_local_ones(seed: int) -> None:
    rng = random.Random(seed)
    local: Counter[int] = Counter(bucket_of(int(rng.expovariate(1 / 900))) for _ in range(500))
    local[OVERFLOW_BUCKET] += 3
    count = sum(local.values())
    facts = [
        FactRow("polres", "polres.skck", "waiting_count", count),
        FactRow("polres", "polres.skck", "waiting_seconds_sum", 123456),
        FactRow("polres", "polres.skck", "tickets_issued", count),
        FactRow("polres", "polres.skck", "tickets_walk_in", count),
    ]
    histograms = [HistogramRow("polres", "polres.skck", "waiting", b, n) for b, n in local.items()]
    summary = build_summary(
        SITE,
        DAY,
        revision=1,
        final=True,
        generated_at=AT,
        facts=facts,
        visits_by_hour={},
        histograms=histograms,
    )
    back = national_rows(summary)

    national = Counter({b: n for (_a, _s, _k, b), n in back.histogram.items()})
    assert national == local
    for p in (0.5, 0.9, 0.99, 1.0):
        assert percentile(national, p) == percentile(local, p)
    assert back.max_error["waiting"] == 9
    assert len(summary.waiting_buckets_seconds) <= 2 * len(local)


def test_coarse_summary_buckets_state_a_wider_error_and_never_report_low() -> None:
    # The contract's default bounds: 0-300 s, 301-600 s, ... Two waits in the first, one in the second.
    service = ServiceDayTotals(
        agency="polres",
        service_type="polres.skck",
        tickets_issued=3,
        tickets_walk_in=3,
        waiting=DurationTotals(count=3, sum_seconds=900, histogram=(2, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
    )
    summary = DailySummaryPublishedV1(
        site="mpp-lain",
        kabkota="6471",
        province="64",
        day=DAY,
        timezone="Asia/Makassar",
        revision=1,
        final=True,
        generated_at=AT,
        visitors=0,
        visitors_by_hour=(0,) * 24,
        waiting_buckets_seconds=WAITING_BUCKETS_SECONDS,
        services=(service,),
    )
    rows = national_rows(summary)

    buckets = Counter({b: n for (_a, _s, _k, b), n in rows.histogram.items()})
    # 300 s lies in the 10-second bucket 300-309, 600 s in 600-609: reported values are never below the
    # exact ones; the first bucket's values may be as low as 0, so the error is 309 seconds.
    assert buckets == Counter({30: 2, 60: 1})
    assert rows.max_error["waiting"] == 309
    median = percentile(buckets, 0.5)
    assert median is not None and median.seconds == 309


def test_bounds_of_empty_histograms_and_the_overflow_bucket() -> None:
    assert histogram_bounds([]) == ()
    assert histogram_bounds([{0: 0}]) == ()
    assert histogram_bounds([{OVERFLOW_BUCKET: 2}, {2879: 1}]) == (28789, 28799)


def test_the_digest_follows_the_figures_only() -> None:
    first = _build()
    assert figures_digest(first) == figures_digest(
        _build(revision=9, final=True, generated_at=datetime.now(UTC))
    )
    assert figures_digest(first) != figures_digest(_build(visits_by_hour={8: 4, 13: 2}))


def test_complaints_are_projected_per_channel_category_and_class() -> None:
    received = ComplaintReceivedV1(
        complaint_id="cmp-1",
        channel=ComplaintChannel.SUGGESTION_BOX,
        category=ComplaintCategory.STAFF_CONDUCT,
        complaint_class=ComplaintClass.DISPUTE_FIELD_INSPECTION,
        resolution_limit_days=5,
        anonymous=True,
        agency="polres",
        received_at=AT,
    )
    env = Envelope.wrap(received, producer="mpp.queue", agency="polres", site="mpp-uji", subject="cmp-1")

    facts = fold_facts([env], lambda _site: ZoneInfo("Asia/Jakarta"))

    measure = "cj_rcv:suggestion_box:staff_conduct:dispute_field_inspection"
    assert facts.counts[FactKey(DAY, "mpp-uji", "polres", "", measure)] == 1
    assert len(measure) <= 64
    anonymous = "cj_anon:suggestion_box:staff_conduct:dispute_field_inspection"
    assert facts.counts[FactKey(DAY, "mpp-uji", "polres", "", anonymous)] == 1

    # With a service type, under it (as the other complaint figures of the event).
    typed = received.model_copy(update={"service_type": "polres.skck", "anonymous": False})
    env = Envelope.wrap(typed, producer="mpp.queue", agency="polres", site="mpp-uji", subject="cmp-1")
    facts = fold_facts([env], lambda _site: ZoneInfo("Asia/Jakarta"))
    assert facts.counts[FactKey(DAY, "mpp-uji", "polres", "polres.skck", measure)] == 1
    assert FactKey(DAY, "mpp-uji", "polres", "polres.skck", anonymous) not in facts.counts


@pytest.mark.parametrize("resolution", [60, 300])
def test_wider_buckets_state_their_width_as_the_error(resolution: int) -> None:
    rng = random.Random(resolution)
    raw = [int(rng.expovariate(1 / 900)) for _ in range(400)]
    local: Counter[int] = Counter(bucket_of(v) for v in raw)
    facts = [
        FactRow("polres", "polres.skck", "waiting_count", len(raw)),
        FactRow("polres", "polres.skck", "waiting_seconds_sum", sum(raw)),
    ]
    histograms = [HistogramRow("polres", "polres.skck", "waiting", b, n) for b, n in local.items()]
    summary = build_summary(
        SITE,
        DAY,
        revision=1,
        final=True,
        generated_at=AT,
        facts=facts,
        visits_by_hour={},
        histograms=histograms,
        resolution=resolution,
    )
    back = national_rows(summary)

    assert back.max_error["waiting"] == resolution - 1
    national = Counter({b: n for (_a, _s, _k, b), n in back.histogram.items()})
    assert sum(national.values()) == len(raw)
    for p in (0.5, 0.9):
        reported = percentile(national, p)
        exact = exact_percentile(raw, p)
        assert reported is not None and exact is not None
        assert reported.seconds - (resolution - 1) <= exact <= reported.seconds


def test_revisions_follow_the_clock_and_never_go_back() -> None:
    now = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    seconds = int(now.timestamp())
    # A first publication, and one after the database was recreated (the state starts again at 0).
    assert next_revision(0, now) == seconds
    # Two publications within one second, or a clock behind the last revision, still increase.
    assert next_revision(seconds, now) == seconds + 1
    assert next_revision(seconds + 50, now) == seconds + 51
