"""Duration percentiles from additive histograms.

Durations (whole seconds) are counted in buckets of ``BUCKET_SECONDS`` seconds: bucket ``b`` holds
``[b * 10, b * 10 + 9]``. Durations of ``CAP_SECONDS`` or more share the last bucket. Histograms of
days, hours, services and sites merge by adding counts, so a median or P90 over any period and any
roll-up is computed from the merged histogram, never by averaging percentiles.

Method and error bound: the percentile is the nearest-rank one (the smallest observed value with at
least ``ceil(p x n)`` observations at or below it). The histogram reports the upper end of the bucket
that holds that observation, so for durations under the cap the reported value ``r`` and the exact
nearest-rank value ``v`` satisfy ``r - 9 <= v <= r`` (at most 9 seconds high, never low). When the
observation lies in the overflow bucket the result is ``CAP_SECONDS`` flagged as a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

BUCKET_SECONDS = 10
CAP_SECONDS = 8 * 3600
OVERFLOW_BUCKET = CAP_SECONDS // BUCKET_SECONDS
MAX_ERROR_SECONDS = BUCKET_SECONDS - 1


def bucket_of(seconds: int) -> int:
    """The histogram bucket of a duration."""
    return min(max(seconds, 0), CAP_SECONDS) // BUCKET_SECONDS


def bucket_upper(bucket: int) -> int:
    """The largest duration a bucket holds (the cap for the overflow bucket)."""
    return CAP_SECONDS if bucket >= OVERFLOW_BUCKET else bucket * BUCKET_SECONDS + BUCKET_SECONDS - 1


@dataclass(frozen=True, slots=True)
class Percentile:
    seconds: int
    at_least: bool
    """True when the value lies beyond the cap: the duration is at least ``seconds``."""


def percentile(histogram: Mapping[int, int], p: float) -> Percentile | None:
    """The nearest-rank ``p`` percentile (0 < p <= 1) of a histogram; none when it is empty."""
    if not 0 < p <= 1:
        raise ValueError("p must lie in (0, 1]")
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = _rank(p, total)
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return Percentile(bucket_upper(bucket), bucket >= OVERFLOW_BUCKET)
    raise AssertionError("unreachable: ranks never exceed the total")


def exact_percentile(values: Iterable[int], p: float) -> int | None:
    """The exact nearest-rank percentile of raw values (used to check the histogram's bound)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[_rank(p, len(ordered)) - 1]


def _rank(p: float, total: int) -> int:
    """ceil(p x total) in exact arithmetic (0.9 x 30 is 27, not 27.000000000000004), at least 1."""
    return max(math.ceil(Fraction(str(p)) * total), 1)
