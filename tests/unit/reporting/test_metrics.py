"""Metric formulas over summed facts: ratios of sums (never means of ratios), the IKM of summed unsur
totals, percentiles of merged histograms, and a definition in Bahasa Indonesia for every metric."""

from __future__ import annotations

from collections import Counter

import pytest

from mpp.reporting.domain.metrics import METRICS, Totals, find, pct
from mpp.reporting.domain.percentiles import bucket_of

pytestmark = pytest.mark.unit


def totals(**measures: int) -> Totals:
    return Totals(measures=Counter(measures))


def compute(metric: str, t: Totals) -> dict[str, object]:
    found = find(metric)
    assert found is not None
    return found.compute(t)


def test_the_catalogue_has_every_metric_with_an_indonesian_definition() -> None:
    assert [m.id for m in METRICS] == [*(f"M{i}" for i in range(1, 11)), "D1", "D2", "D3"]
    for m in METRICS:
        d = m.definition()
        assert d["name"]
        assert d["formula"]
        assert d["source"]
        assert d["href"] == f"/v1/metrics/{m.id}/definition"


def test_metrics_are_found_by_id_in_any_case_or_by_key() -> None:
    assert find("m6") is find("M6") is find("ikm")
    assert find("M11") is None


def test_sla_compliance_of_a_roll_up_is_the_ratio_of_the_sums() -> None:
    # Site A: 1 of 1 within; site B: 1 of 3. The mean of ratios would say 66.67%.
    a = {"applications_sla_known": 1, "applications_within_sla": 1, "applications_finished": 1}
    b = {"applications_sla_known": 3, "applications_within_sla": 1, "applications_finished": 4}
    both = Counter(a) + Counter(b)

    figures = compute("M5", Totals(measures=both))

    assert figures["sla_compliance_pct"] == 50.0
    assert figures["applications_finished"] == 5


def test_a_percentage_rounds_half_up_and_is_empty_without_a_base() -> None:
    assert pct(1, 8) == 12.5
    assert pct(1, 3) == 33.33
    assert pct(2, 3) == 66.67
    assert pct(1, 0) is None


def test_the_ikm_figure_of_summed_totals_uses_the_worked_example() -> None:
    sums = (105, 101, 100, 116, 102, 105, 106, 105, 115)
    measures = {"skm_respondents": 29}
    for i, s in enumerate(sums, start=1):
        measures[f"skm_u{i}_answers"] = 29
        measures[f"skm_u{i}_sum"] = s

    figures = compute("M6", totals(**measures))

    assert (figures["ikm"], figures["grade"], figures["grade_label"]) == (91.48, "A", "Sangat Baik")
    assert figures["respondents"] == 29
    assert figures["weakest_element"] == "U3"


def test_an_ikm_with_a_missing_element_has_no_index_but_keeps_the_element_indices() -> None:
    figures = compute("M6", totals(skm_respondents=1, skm_u1_answers=1, skm_u1_sum=3))

    assert figures["ikm"] is None
    assert figures["grade"] is None
    elements = figures["elements"]
    assert isinstance(elements, list)
    assert elements[0]["index"] == 75.0


def test_waiting_percentiles_come_from_the_merged_histogram() -> None:
    day_1 = Counter(bucket_of(s) for s in (60, 60, 60))
    day_2 = Counter(bucket_of(s) for s in (600, 600, 600, 600))
    merged = day_1 + day_2
    t = Totals(
        measures=Counter({"waiting_count": 7, "waiting_seconds_sum": 2580}),
        histograms={"waiting": merged},
    )

    figures = compute("D1", t)

    # Median of the seven values is 600 (the 4th), not the mean of the daily medians (330).
    assert figures["median_seconds"] == 609
    assert figures["p90_seconds"] == 609
    assert figures["mean_seconds"] == 368.57
    assert figures["max_error_seconds"] == 9


def test_online_share_counts_online_booking_and_mpp_digital() -> None:
    figures = compute(
        "M8", totals(tickets_issued=8, tickets_walk_in=5, tickets_online=2, tickets_mpp_digital=1)
    )

    assert figures["tickets_online_pct"] == 37.5


def test_agencies_hosted_against_active() -> None:
    t = Totals(
        active_agencies={"polres"},
        hosted={"agencies": {"polres": "central", "disdukcapil": "local_opd", "dpmptsp": "local_opd"}},
    )

    figures = compute("M1", t)

    assert figures == {
        "agencies_active": 1,
        "agencies_hosted": 3,
        "agencies_by_type": {"central": 1, "local_opd": 2},
        "agencies_without_activity": 2,
    }


def test_complaint_follow_up_and_time_limits() -> None:
    figures = compute(
        "M7",
        totals(
            complaints_received=4,
            complaints_channel_sp4n_lapor=3,
            complaints_channel_counter=1,
            complaints_responded=3,
            complaints_responded_within_limit=2,
            complaints_response_days_sum=7,
            complaints_resolved=1,
            complaints_resolved_within_limit=1,
            complaints_resolution_days_sum=4,
        ),
    )

    assert figures["followed_up_pct"] == 75.0
    assert figures["response_within_limit_pct"] == 66.67
    assert figures["mean_response_working_days"] == 2.33
    assert figures["by_channel"] == {"sp4n_lapor": 3, "counter": 1}
    assert figures["resolution_within_limit_pct"] == 100.0
