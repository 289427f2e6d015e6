"""The demo seed's synthetic citizens: deterministic, distinct, structurally valid and consistent."""

from __future__ import annotations

from datetime import date

import pytest

from mpp.contracts.nik import parse_kk, parse_nik
from mpp.identity.domain.citizen import consistency_warnings
from mpp.identity.seed import synthetic_citizen

pytestmark = pytest.mark.unit

SITE = "mpp-kota-sukamaju"
TODAY = date(2026, 11, 3)


class TestSyntheticCitizen:
    def test_the_same_number_is_always_the_same_person(self) -> None:
        assert synthetic_citizen(7, site=SITE, kabkota="3298") == synthetic_citizen(
            7, site=SITE, kabkota="3298"
        )

    def test_numbers_never_share_a_nik(self) -> None:
        niks = {synthetic_citizen(n, site=SITE, kabkota="3298").nik for n in range(1, 20_001)}

        assert len(niks) == 20_000

    @pytest.mark.parametrize("number", [1, 50, 9999, 10_000, 123_456])
    def test_numbers_are_valid_and_consistent_with_the_form(self, number: int) -> None:
        cmd = synthetic_citizen(number, site=SITE, kabkota="3298")

        parsed = parse_nik(cmd.nik, today=TODAY)
        parse_kk(cmd.kk_number, today=TODAY)
        assert consistency_warnings(parsed, birth_date=cmd.birth_date, sex=cmd.sex) == []
        assert cmd.nik.startswith("3298")
        assert cmd.full_name == f"Warga Uji {number:04d}"
