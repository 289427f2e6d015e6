"""Percentiles from merged 10-second histograms: nearest-rank, at most 9 seconds above the exact value."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mpp.reporting.domain.percentiles import (
    CAP_SECONDS,
    MAX_ERROR_SECONDS,
    OVERFLOW_BUCKET,
    BlockHistogram,
    bucket_of,
    bucket_upper,
    exact_percentile,
    percentile,
    percentiles,
)

pytestmark = pytest.mark.unit


def histogram(values: list[int]) -> Counter[int]:
    return Counter(bucket_of(v) for v in values)


def test_buckets_are_ten_seconds_wide() -> None:
    assert [bucket_of(s) for s in (0, 9, 10, 19, 20)] == [0, 0, 1, 1, 2]
    assert bucket_upper(bucket_of(0)) == 9
    assert bucket_upper(bucket_of(125)) == 129


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile(Counter(), 0.5) is None
    assert exact_percentile([], 0.5) is None


def test_nearest_rank_on_a_small_sample() -> None:
    values = [30, 10, 50, 20, 40]

    assert exact_percentile(values, 0.5) == 30
    assert exact_percentile(values, 0.9) == 50
    median = percentile(histogram(values), 0.5)
    assert median is not None
    assert median.seconds == 39
    assert not median.at_least


@pytest.mark.parametrize("seed", range(20))
def test_the_histogram_is_within_the_stated_bound_of_the_exact_value(seed: int) -> None:
    rng = random.Random(seed)
    values = [int(rng.expovariate(1 / 600)) for _ in range(rng.randint(1, 400))]
    for p in (0.5, 0.9, 0.99, 1.0):
        exact = exact_percentile(values, p)
        approx = percentile(histogram(values), p)
        assert exact is not None
        assert approx is not None
        if exact < CAP_SECONDS:
            assert approx.seconds - MAX_ERROR_SECONDS <= exact <= approx.seconds


@pytest.mark.parametrize("seed", range(10))
def test_merged_histograms_give_the_percentile_of_the_union(seed: int) -> None:
    rng = random.Random(seed)
    days = [[rng.randint(0, 3600) for _ in range(rng.randint(0, 200))] for _ in range(5)]
    merged: Counter[int] = Counter()
    for day in days:
        merged.update(histogram(day))
    union = [v for day in days for v in day]

    assert percentile(merged, 0.5) == percentile(histogram(union), 0.5)
    assert percentile(merged, 0.9) == percentile(histogram(union), 0.9)


def test_durations_beyond_the_cap_are_reported_as_at_least_the_cap() -> None:
    value = percentile(histogram([CAP_SECONDS + 5000, CAP_SECONDS * 2]), 0.5)

    assert value is not None
    assert (value.seconds, value.at_least) == (CAP_SECONDS, True)


def test_a_ninety_percent_rank_is_computed_exactly() -> None:
    # 0.9 x 30 = 27 exactly: the 27th value, not the 28th.
    values = list(range(0, 300, 10))

    assert exact_percentile(values, 0.9) == 260
    p90 = percentile(histogram(values), 0.9)
    assert p90 is not None
    assert p90.seconds == 269


def _blocks(counts: Counter[int], size: int) -> BlockHistogram:
    """``counts`` merged into a histogram of blocks, one bucket's block at a time, as rows arrive."""
    blocked = BlockHistogram(size)
    for bucket, n in counts.items():
        block, at = divmod(bucket, size)
        row = [0] * size
        row[at] = n
        blocked.add(block, row)
    return blocked


@pytest.mark.parametrize("seed", range(40))
def test_a_histogram_of_blocks_has_the_percentiles_of_its_buckets(seed: int) -> None:
    """Held 16 buckets to a block (the per-site roll-up's rows), a histogram gives the same nearest-rank
    percentiles as bucket by bucket, over the overflow bucket and empty blocks too."""
    rng = random.Random(seed)
    spread = rng.choice([20, 200, OVERFLOW_BUCKET + 1])
    counts = Counter({rng.randrange(spread): rng.randint(1, 50) for _ in range(rng.randint(1, 60))})
    if rng.random() < 0.3:
        counts[OVERFLOW_BUCKET] += rng.randint(1, 5)
    blocked = _blocks(counts, 16)
    if rng.random() < 0.3:
        blocked.add(max(counts) // 16 + 3, [0] * 16)
    assert dict(blocked) == dict(counts)
    assert len(blocked) == len(counts)
    assert blocked.total() == sum(counts.values())
    for p in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
        assert percentile(blocked, p) == percentile(counts, p), p


def test_an_empty_histogram_of_blocks_has_no_percentile() -> None:
    blocked = BlockHistogram(16)
    assert percentile(blocked, 0.5) is None
    blocked.add(4, [0] * 16)
    assert percentile(blocked, 0.9) is None
    assert dict(blocked) == {}


@pytest.mark.parametrize("seed", range(40))
def test_several_percentiles_at_once_are_those_of_the_counted_observations(seed: int) -> None:
    """Ranked together from running totals, by bucket or by block, percentiles are the nearest-rank ones
    of the observations the histogram counts, taken one by one (zero counts and gaps included)."""
    rng = random.Random(seed)
    counts = Counter(
        {rng.randrange(rng.choice([5, 300])): rng.randint(0, 9) for _ in range(rng.randint(1, 40))}
    )
    counts[rng.randrange(300)] += 1  # never empty
    observed = sorted(b for b, n in counts.items() for _ in range(n))
    ps = (0.5, 0.9, 0.01, 1.0, 0.333)
    expected = [bucket_upper(exact_percentile(observed, p) or 0) for p in ps]
    for held in (counts, _blocks(counts, 16), _blocks(counts, 7)):
        found = percentiles(held, ps)
        assert [f.seconds if f else None for f in found] == expected
        assert found == [percentile(held, p) for p in ps]


def test_a_percentile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="p must lie"):
        percentiles(Counter({1: 2}), (0.5, 1.5))
