"""Registrations that are refused: 422 naming the field, in Bahasa Indonesia, never echoing a number."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.identity.harness import IdentityApi, officer, person

pytestmark = pytest.mark.integration


def _problems(body: dict[str, Any]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = body["error"]["details"]["problems"]
    return problems


class TestInvalidNumbers:
    @pytest.mark.parametrize(
        ("nik", "problem"),
        [
            ("329801450785", "NIK harus terdiri dari 16 digit angka"),
            ("32980145078500AB", "NIK hanya boleh berisi angka"),
            ("9998014507850003", "Dua digit pertama NIK bukan kode provinsi yang dikenal"),
            ("3200014507850003", "Kode kabupaten/kota pada NIK tidak boleh 00"),
            ("3298004507850003", "Kode kecamatan pada NIK tidak boleh 00"),
            ("3298014507850000", "Nomor urut pada NIK tidak boleh 0000"),
            ("3298013102850003", "Digit 7-12 NIK bukan tanggal lahir yang valid"),
            ("3298017302850003", "Digit 7-12 NIK bukan tanggal lahir yang valid"),
        ],
    )
    async def test_a_nik_of_the_wrong_structure_is_422_naming_the_part_not_the_number(
        self, identity: IdentityApi, nik: str, problem: str
    ) -> None:
        response = await identity.client.post(
            "/v1/citizens", json=person(1) | {"nik": nik}, headers=officer()
        )

        assert response.status_code == 422
        [found] = _problems(response.json())
        assert found["field"] == "nik"
        assert found["problem"].startswith(problem)
        assert nik not in response.text
        assert nik[6:12] not in response.text
        assert await identity.citizen_rows() == []

    @pytest.mark.parametrize("kk", ["3298013213150077", "9998010903150077", "32980109031500"])
    async def test_a_kk_number_of_the_wrong_structure_is_422_without_its_digits(
        self, identity: IdentityApi, kk: str
    ) -> None:
        response = await identity.client.post(
            "/v1/citizens", json=person(1) | {"kk_number": kk}, headers=officer()
        )

        assert response.status_code == 422
        [found] = _problems(response.json())
        assert found["field"] == "kk_number"
        assert "nomor KK" in found["problem"]
        assert kk not in response.text
        assert kk[6:12] not in response.text


class TestInvalidFields:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"full_name": "   "}, "full_name"),
            ({"birth_place": "  "}, "birth_place"),
            ({"birth_date": "2099-01-01"}, "birth_date"),
            ({"domicile_kabkota": "9998"}, "domicile_kabkota"),
            ({"domicile_kabkota": "32ab"}, "domicile_kabkota"),
        ],
    )
    async def test_an_unacceptable_field_is_422_naming_it(
        self, identity: IdentityApi, overrides: dict[str, Any], field: str
    ) -> None:
        response = await identity.client.post("/v1/citizens", json=person(1) | overrides, headers=officer())

        assert response.status_code == 422
        assert [p["field"] for p in _problems(response.json())] == [field]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"birth_date": "05-07-1985"}, "birth_date"),
            ({"sex": "x"}, "sex"),
            ({"nik": 3298014507850003}, "nik"),
            ({"religion": "-"}, "religion"),
        ],
    )
    async def test_a_malformed_field_is_422_from_validation(
        self, identity: IdentityApi, overrides: dict[str, Any], field: str
    ) -> None:
        response = await identity.client.post("/v1/citizens", json=person(1) | overrides, headers=officer())

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"
        assert field in [p["field"] for p in _problems(response.json())]
        assert "3298014507850003" not in response.text

    async def test_a_missing_field_is_422_naming_it(self, identity: IdentityApi) -> None:
        body = person(1)
        del body["kk_number"]

        response = await identity.client.post("/v1/citizens", json=body, headers=officer())

        assert response.status_code == 422
        assert [p["field"] for p in _problems(response.json())] == ["kk_number"]
        assert body["nik"] not in response.text

    async def test_a_short_idempotency_key_is_422(self, identity: IdentityApi) -> None:
        response = await identity.client.post(
            "/v1/citizens", json=person(1), headers=officer() | {"Idempotency-Key": "short"}
        )

        assert response.status_code == 422
        assert await identity.citizen_rows() == []


class TestNulCharacters:
    @pytest.mark.parametrize(
        ("method", "url"),
        [
            ("GET", "/v1/citizens/c_%00"),
            ("PUT", "/v1/citizens/c_%00/status"),
            ("GET", "/v1/citizens?page=1%00"),
        ],
    )
    async def test_in_the_path_or_query_is_400_not_a_server_error(
        self, identity: IdentityApi, method: str, url: str
    ) -> None:
        response = await identity.client.request(method, url, json={"status": "deceased"}, headers=officer())

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_character"


class TestControlCharacters:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("full_name", "Siti\x00Aminah"),
            ("full_name", "Siti\nAminah"),
            ("birth_place", "Kota\x1bSukamaju"),
        ],
    )
    async def test_in_a_name_or_place_are_422_naming_the_field_and_nothing_is_stored(
        self, identity: IdentityApi, field: str, value: str
    ) -> None:
        response = await identity.client.post(
            "/v1/citizens", json=person(1) | {field: value}, headers=officer()
        )

        assert response.status_code == 422
        problems = _problems(response.json())
        assert [p["field"] for p in problems] == [field]
        assert "karakter kontrol" in response.text
        assert await identity.citizen_rows() == []
