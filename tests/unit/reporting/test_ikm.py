"""The IKM formula of PermenPANRB 14/2017: exact weight 1/9, x25, rounding to two decimals, grades on
lower bounds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mpp.contracts.events.common import SkmElement
from mpp.contracts.events.reporting import SkmElementTotal, SkmTotals
from mpp.contracts.events.reporting import ikm as contract_ikm
from mpp.reporting.domain.ikm import ELEMENTS, ElementTotal, Grade, element_index, grade, index, round2

pytestmark = pytest.mark.unit

WORKED_EXAMPLE_SUMS = (105, 101, 100, 116, 102, 105, 106, 105, 115)
WORKED_EXAMPLE_RESPONDENTS = 29


def totals(sums: tuple[int, ...], answers: int) -> dict[str, ElementTotal]:
    return {e: ElementTotal(answers, s) for e, s in zip(ELEMENTS, sums, strict=True)}


class TestWorkedExample:
    def test_the_reference_example_gives_91_48(self) -> None:
        assert index(totals(WORKED_EXAMPLE_SUMS, WORKED_EXAMPLE_RESPONDENTS)) == Decimal("91.48")

    def test_the_reference_example_is_grade_a(self) -> None:
        value = index(totals(WORKED_EXAMPLE_SUMS, WORKED_EXAMPLE_RESPONDENTS))

        assert value is not None
        assert grade(value) is Grade.A
        assert grade(value).label == "Sangat Baik"

    def test_the_rounded_weight_0_11_would_have_given_90_56(self) -> None:
        # The mistake the regulation's exact weight avoids: shows the example discriminates.
        rounded_weight = sum(
            (Decimal(s) / WORKED_EXAMPLE_RESPONDENTS * Decimal("0.11") for s in WORKED_EXAMPLE_SUMS),
            Decimal(0),
        )
        wrong = (rounded_weight * 25).quantize(Decimal("0.01"))

        assert wrong == Decimal("90.56")
        assert index(totals(WORKED_EXAMPLE_SUMS, WORKED_EXAMPLE_RESPONDENTS)) != wrong

    def test_each_element_index_is_25_times_its_mean(self) -> None:
        # U4: 116 / 29 = 4.0 exactly -> 100.00; U3: 100 / 29 x 25 = 86.206... -> 86.21
        by_element = totals(WORKED_EXAMPLE_SUMS, WORKED_EXAMPLE_RESPONDENTS)

        assert element_index(by_element["U4"]) == Decimal("100.00")
        assert element_index(by_element["U3"]) == Decimal("86.21")


class TestGradeBands:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("100.00", Grade.A),
            ("88.31", Grade.A),
            ("88.30", Grade.B),
            ("76.61", Grade.B),
            ("76.60", Grade.C),
            ("65.00", Grade.C),
            ("64.99", Grade.D),
            ("25.00", Grade.D),
        ],
    )
    def test_grades_use_lower_bounds_only(self, value: str, expected: Grade) -> None:
        assert grade(Decimal(value)) is expected

    def test_the_index_is_rounded_before_it_is_graded(self) -> None:
        # 88.305 rounds half up to 88.31: grade A, although the unrounded value is below 88.31.
        assert grade(Decimal("88.305")) is Grade.A
        assert grade(Decimal("88.3049")) is Grade.B


class TestRounding:
    def test_half_up_to_two_decimals(self) -> None:
        from fractions import Fraction

        assert round2(Fraction(88305, 1000)) == Decimal("88.31")
        assert round2(Fraction(1, 3)) == Decimal("0.33")
        assert round2(Fraction(2, 3)) == Decimal("0.67")

    def test_an_index_needs_all_nine_elements(self) -> None:
        partial = totals(WORKED_EXAMPLE_SUMS, WORKED_EXAMPLE_RESPONDENTS)
        del partial["U9"]

        assert index(partial) is None
        assert index({**partial, "U9": ElementTotal(0, 0)}) is None

    def test_elements_with_different_answer_counts_use_their_own_means(self) -> None:
        # U1 answered by 2 (4 + 4), the rest by 4 (all 3s): (4 + 8 x 3) / 9 x 25 = 77.777... -> 77.78
        by_element = {e: ElementTotal(4, 12) for e in ELEMENTS} | {"U1": ElementTotal(2, 8)}

        assert index(by_element) == Decimal("77.78")
        assert grade(Decimal("77.78")) is Grade.B


def test_the_index_of_summed_totals_agrees_with_the_contracts_recomputation() -> None:
    days = [
        (WORKED_EXAMPLE_SUMS, WORKED_EXAMPLE_RESPONDENTS),
        ((40, 35, 30, 40, 38, 33, 36, 39, 31), 10),
        ((12, 11, 9, 16, 10, 12, 13, 11, 10), 4),
    ]
    summed = {
        e: ElementTotal(sum(n for _, n in days), sum(s[i] for s, _ in days)) for i, e in enumerate(ELEMENTS)
    }
    contract = SkmTotals(
        respondents=sum(n for _, n in days),
        elements=tuple(
            SkmElementTotal(element=SkmElement(e), answers=t.answers, score_sum=t.score_sum)
            for e, t in summed.items()
        ),
    )

    assert index(summed) == contract_ikm(contract)
