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

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from itertools import accumulate

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


class BlockHistogram(Mapping[int, int]):
    """A histogram held as blocks of ``size`` consecutive buckets (block ``k`` holds the counts of
    buckets ``k * size`` to ``k * size + size - 1``), as the per-site roll-up stores it: merged a block at
    a time and ranked a block at a time, so a histogram of a few hundred buckets costs a few dozen steps.
    As a mapping it holds the buckets with a count."""

    __slots__ = ("blocks", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.blocks: dict[int, Sequence[int]] = {}

    def add(self, block: int, counts: Sequence[int]) -> None:
        """Add the counts of one block's buckets (``size`` of them, in bucket order; a sequence that is
        never changed afterwards, such as a row's tuple: it is held as it is until another adds up)."""
        held = self.blocks.get(block)
        if held is None:
            self.blocks[block] = counts
        else:
            self.blocks[block] = [a + b for a, b in zip(held, counts, strict=True)]

    def __getitem__(self, bucket: int) -> int:
        block, at = divmod(bucket, self.size)
        counts = self.blocks.get(block)
        if counts is None or not counts[at]:
            raise KeyError(bucket)
        return counts[at]

    def __iter__(self) -> Iterator[int]:
        for block in sorted(self.blocks):
            base = block * self.size
            yield from (base + at for at, count in enumerate(self.blocks[block]) if count)

    def __len__(self) -> int:
        return sum(1 for counts in self.blocks.values() for count in counts if count)

    def total(self) -> int:
        return sum(map(sum, self.blocks.values()))

    def percentiles(self, ps: Sequence[float]) -> list[Percentile | None]:
        """:func:`percentiles` of this histogram: each rank found among the blocks' running totals by
        bisection, then walked within its block only."""
        order = sorted(self.blocks)
        counts = [self.blocks[b] for b in order]
        running = list(accumulate(map(sum, counts)))
        total = running[-1] if running else 0
        if total <= 0:
            return [None for _ in ps]
        found: list[Percentile | None] = []
        for p in ps:
            rank = _rank(p, total)
            at = bisect_left(running, rank)
            seen = running[at - 1] if at else 0
            within = bisect_left(list(accumulate(counts[at], initial=seen)), rank) - 1
            bucket = order[at] * self.size + within
            found.append(Percentile(bucket_upper(bucket), bucket >= OVERFLOW_BUCKET))
        return found


def percentile(histogram: Mapping[int, int], p: float) -> Percentile | None:
    """The nearest-rank ``p`` percentile (0 < p <= 1) of a histogram; none when it is empty."""
    return percentiles(histogram, (p,))[0]


def percentiles(histogram: Mapping[int, int], ps: Sequence[float]) -> list[Percentile | None]:
    """:func:`percentile` of each of ``ps``, from one walk of the histogram's running totals."""
    for p in ps:
        if not 0 < p <= 1:
            raise ValueError("p must lie in (0, 1]")
    if isinstance(histogram, BlockHistogram):
        return histogram.percentiles(ps)
    buckets = sorted(histogram)
    running = list(accumulate(histogram[b] for b in buckets))
    total = running[-1] if running else 0
    if total <= 0:
        return [None for _ in ps]
    found: list[Percentile | None] = []
    for p in ps:
        bucket = buckets[bisect_left(running, _rank(p, total))]
        found.append(Percentile(bucket_upper(bucket), bucket >= OVERFLOW_BUCKET))
    return found


def exact_percentile(values: Iterable[int], p: float) -> int | None:
    """The exact nearest-rank percentile of raw values (used to check the histogram's bound)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[_rank(p, len(ordered)) - 1]


def _rank(p: float, total: int) -> int:
    """ceil(p x total) in exact arithmetic (0.9 x 30 is 27, not 27.000000000000004), at least 1."""
    numerator, denominator = _exact(p)
    return max(-(-numerator * total // denominator), 1)


@cache
def _exact(p: float) -> tuple[int, int]:
    """``p`` as the decimal fraction it is written as, numerator and denominator (a page computes
    thousands of percentiles of a few ``p``: each is parsed once, and ranked in integers)."""
    exact = Fraction(str(p))
    return exact.numerator, exact.denominator
