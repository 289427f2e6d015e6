"""The IKM index of the SKM survey, exactly as PermenPANRB 14/2017 defines it.

    NRR_u = score_sum_u / answers_u                 (1..4, the mean of the valid answers of unsur u)
    IKM   = 25 x (NRR_1 + ... + NRR_9) x 1/9        (25..100, the exact weight 1/9, never 0.11)

The index is computed in exact fractions, rounded half up to two decimals, and only then graded on
lower bounds: A >= 88.31, B >= 76.61, C >= 65.00, D below. Inputs are additive totals (answers and
score sums per unsur), so the index of any roll-up is the index of the summed totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction

ELEMENTS: tuple[str, ...] = ("U1", "U2", "U3", "U4", "U5", "U6", "U7", "U8", "U9")

ELEMENT_LABELS: dict[str, str] = {
    "U1": "Persyaratan",
    "U2": "Sistem, mekanisme, dan prosedur",
    "U3": "Waktu penyelesaian",
    "U4": "Biaya/tarif",
    "U5": "Produk spesifikasi jenis pelayanan",
    "U6": "Kompetensi pelaksana",
    "U7": "Perilaku pelaksana",
    "U8": "Sarana dan prasarana",
    "U9": "Penanganan pengaduan, saran, dan masukan",
}

WEIGHT = Fraction(1, len(ELEMENTS))
CONVERSION = 25
_CENT = Decimal("0.01")


class Grade(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def label(self) -> str:
        return {"A": "Sangat Baik", "B": "Baik", "C": "Kurang Baik", "D": "Tidak Baik"}[self.value]


GRADE_LOWER_BOUNDS: tuple[tuple[Decimal, Grade], ...] = (
    (Decimal("88.31"), Grade.A),
    (Decimal("76.61"), Grade.B),
    (Decimal("65.00"), Grade.C),
)


@dataclass(frozen=True, slots=True)
class ElementTotal:
    """Valid answers (1..4) of one unsur and the sum of their scores."""

    answers: int
    score_sum: int


def round2(value: Fraction) -> Decimal:
    """Round an exact fraction half up to two decimals."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    # Decimal division keeps 28 significant digits; a tie can only occur for a finite value, which
    # the division then represents exactly.
    return exact.quantize(_CENT, rounding=ROUND_HALF_UP)


def nrr(total: ElementTotal) -> Fraction | None:
    """Nilai rata-rata of one unsur, none without answers."""
    return Fraction(total.score_sum, total.answers) if total.answers else None


def element_index(total: ElementTotal) -> Decimal | None:
    """25 x NRR of one unsur, rounded to two decimals."""
    value = nrr(total)
    return None if value is None else round2(CONVERSION * value)


def index(totals: Mapping[str, ElementTotal]) -> Decimal | None:
    """The IKM (25..100) rounded to two decimals; none unless all nine unsur have answers."""
    means = [nrr(totals[e]) if e in totals else None for e in ELEMENTS]
    if any(m is None for m in means):
        return None
    weighted = sum((m * WEIGHT for m in means if m is not None), Fraction(0))
    return round2(CONVERSION * weighted)


def grade(value: Decimal) -> Grade:
    """The grade of an index already rounded to two decimals, on lower bounds only."""
    rounded = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    for lower, g in GRADE_LOWER_BOUNDS:
        if rounded >= lower:
            return g
    return Grade.D
