"""The citizen registry over HTTP on PostgreSQL: registering, reading back masked, encryption at rest,
consistency warnings, idempotent retries, status changes and the masked list."""

from __future__ import annotations

import asyncio
import re
from datetime import date

import pytest
from sqlalchemy import select

from mpp.contracts.events.common import Sex
from mpp.identity.persistence.tables import idempotency_keys
from tests.integration.identity.harness import SITE, IdentityApi, officer, person, supervisor

pytestmark = pytest.mark.integration

IDEMPOTENCY_KEY = "register-7f3c2a91"


class TestRegisterCitizen:
    async def test_answers_201_with_the_record_masked_and_a_location(self, identity: IdentityApi) -> None:
        body = person(1)

        response = await identity.client.post("/v1/citizens", json=body, headers=officer())

        assert response.status_code == 201
        created = response.json()
        assert re.fullmatch(r"c_[0-9a-f]{32}", created["citizen_ref"])
        assert created["nik"] == body["nik"][:4] + "*" * 12
        assert created["kk_number"] == body["kk_number"][:4] + "*" * 12
        assert created["full_name"] == "Warga Uji 0001"
        assert created["birth_date"] == "1985-07-05"
        assert created["sex"] == "female"
        assert created["domicile_kabkota"] == "3298"
        assert created["status"] == "active"
        assert created["site"] == SITE
        assert created["warnings"] == []
        assert response.headers["Location"] == f"/v1/citizens/{created['citizen_ref']}"

    async def test_the_response_never_holds_the_nik_or_kk_number(self, identity: IdentityApi) -> None:
        body = person(2)

        response = await identity.client.post("/v1/citizens", json=body, headers=officer())

        assert body["nik"] not in response.text
        assert body["kk_number"] not in response.text

    async def test_the_record_can_be_read_back_masked(self, identity: IdentityApi) -> None:
        created = await identity.register(person(3))

        read = await identity.client.get(
            f"/v1/citizens/{created['citizen_ref']}", headers=officer("officer-2")
        )

        assert read.status_code == 200
        assert read.json() == {k: v for k, v in created.items() if k != "warnings"}

    async def test_personal_fields_are_stored_encrypted_and_found_by_keyed_hash(
        self, identity: IdentityApi
    ) -> None:
        body = person(4)
        await identity.register(body)

        [row] = await identity.citizen_rows()

        stored = b"".join(v for v in row.values() if isinstance(v, bytes))
        text = " ".join(str(v) for v in row.values() if not isinstance(v, bytes))
        for secret in (body["nik"], body["kk_number"], body["full_name"], "1985-07-05", "Kota Sukamaju"):
            assert secret.encode() not in stored
            assert secret not in text
        assert re.fullmatch(r"[0-9a-f]{64}", row["nik_lookup"])

    async def test_two_records_with_the_same_name_have_different_ciphertexts(
        self, identity: IdentityApi
    ) -> None:
        first, second = person(5), person(6)
        second["full_name"] = first["full_name"]
        await identity.register(first)
        await identity.register(second)

        rows = await identity.citizen_rows()

        assert rows[0]["full_name_enc"] != rows[1]["full_name_enc"]

    async def test_a_form_that_disagrees_with_the_nik_is_registered_with_warnings(
        self, identity: IdentityApi
    ) -> None:
        body = person(7, born=date(1985, 7, 5), sex=Sex.FEMALE) | {"birth_date": "1985-07-06", "sex": "male"}

        response = await identity.client.post("/v1/citizens", json=body, headers=officer())

        assert response.status_code == 201
        warnings = response.json()["warnings"]
        assert {w["code"] for w in warnings} == {"birth_date_mismatch", "sex_mismatch"}
        assert {w["field"] for w in warnings} == {"birth_date", "sex"}
        assert all(body["nik"] not in w["message"] for w in warnings)
        assert response.json()["birth_date"] == "1985-07-06"

    async def test_a_nik_registered_before_is_a_conflict(self, identity: IdentityApi) -> None:
        body = person(8)
        await identity.register(body)

        again = await identity.client.post(
            "/v1/citizens", json=body | {"full_name": "Warga Lain"}, headers=officer("officer-2")
        )

        assert again.status_code == 409
        assert again.json()["error"]["code"] == "already_registered"
        assert body["nik"] not in again.text
        assert len(await identity.citizen_rows()) == 1

    async def test_the_same_nik_registered_twice_at_once_gives_one_record(
        self, identity: IdentityApi
    ) -> None:
        body = person(9)

        responses = await asyncio.gather(
            *(identity.client.post("/v1/citizens", json=body, headers=officer(f"o-{i}")) for i in range(6))
        )

        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
        assert len(await identity.citizen_rows()) == 1


class TestIdempotentRegistration:
    async def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(
        self, identity: IdentityApi
    ) -> None:
        headers = officer() | {"Idempotency-Key": IDEMPOTENCY_KEY}
        first = await identity.client.post("/v1/citizens", json=person(10), headers=headers)

        retry = await identity.client.post("/v1/citizens", json=person(10), headers=headers)

        assert (first.status_code, retry.status_code) == (201, 201)
        assert retry.json() == first.json()
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.headers["Location"] == first.headers["Location"]
        assert len(await identity.citizen_rows()) == 1

    async def test_the_same_key_with_another_body_is_refused(self, identity: IdentityApi) -> None:
        headers = officer() | {"Idempotency-Key": IDEMPOTENCY_KEY}
        await identity.client.post("/v1/citizens", json=person(11), headers=headers)

        other = await identity.client.post("/v1/citizens", json=person(12), headers=headers)

        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        assert len(await identity.citizen_rows()) == 1

    async def test_the_same_key_of_another_officer_is_another_request(self, identity: IdentityApi) -> None:
        await identity.client.post(
            "/v1/citizens", json=person(13), headers=officer() | {"Idempotency-Key": IDEMPOTENCY_KEY}
        )

        other = await identity.client.post(
            "/v1/citizens",
            json=person(14),
            headers=officer("officer-2") | {"Idempotency-Key": IDEMPOTENCY_KEY},
        )

        assert other.status_code == 201
        assert len(await identity.citizen_rows()) == 2

    async def test_concurrent_retries_with_one_key_create_one_record_and_agree(
        self, identity: IdentityApi
    ) -> None:
        headers = officer() | {"Idempotency-Key": IDEMPOTENCY_KEY}

        responses = await asyncio.gather(
            *(identity.client.post("/v1/citizens", json=person(15), headers=headers) for _ in range(12))
        )

        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["citizen_ref"] for r in responses}) == 1
        assert len(await identity.citizen_rows()) == 1

    async def test_the_stored_answer_is_encrypted(self, identity: IdentityApi) -> None:
        body = person(16)
        await identity.client.post(
            "/v1/citizens", json=body, headers=officer() | {"Idempotency-Key": IDEMPOTENCY_KEY}
        )

        async with identity.engine.connect() as conn:
            [row] = (await conn.execute(select(idempotency_keys))).all()

        assert body["full_name"].encode() not in row.response_enc
        assert b"1985-07-05" not in row.response_enc


class TestChangeStatus:
    async def test_a_supervisor_records_a_death(self, identity: IdentityApi) -> None:
        created = await identity.register(person(20))

        response = await identity.client.put(
            f"/v1/citizens/{created['citizen_ref']}/status", json={"status": "deceased"}, headers=supervisor()
        )

        assert response.status_code == 200
        assert response.json()["status"] == "deceased"
        read = await identity.client.get(f"/v1/citizens/{created['citizen_ref']}", headers=officer())
        assert read.json()["status"] == "deceased"

    async def test_a_deceased_record_cannot_become_active_again(self, identity: IdentityApi) -> None:
        created = await identity.register(person(21))
        url = f"/v1/citizens/{created['citizen_ref']}/status"
        await identity.client.put(url, json={"status": "deceased"}, headers=supervisor())

        response = await identity.client.put(url, json={"status": "active"}, headers=supervisor())

        assert response.status_code == 409
        assert response.json()["error"]["details"] == {"current_status": "deceased", "allowed": []}

    async def test_an_unknown_status_is_422(self, identity: IdentityApi) -> None:
        created = await identity.register(person(22))

        response = await identity.client.put(
            f"/v1/citizens/{created['citizen_ref']}/status", json={"status": "vanished"}, headers=supervisor()
        )

        assert response.status_code == 422
        assert response.json()["error"]["details"]["problems"][0]["field"] == "status"

    async def test_an_officer_may_not_change_a_status(self, identity: IdentityApi) -> None:
        created = await identity.register(person(23))

        response = await identity.client.put(
            f"/v1/citizens/{created['citizen_ref']}/status", json={"status": "deceased"}, headers=officer()
        )

        assert response.status_code == 403


class TestListCitizens:
    async def test_pages_the_site_newest_first_with_names_and_numbers_masked(
        self, identity: IdentityApi
    ) -> None:
        bodies = [person(30 + i) for i in range(5)]
        refs = []
        for i, body in enumerate(bodies):
            identity.clock.at = identity.clock.at.replace(minute=i)
            refs.append((await identity.register(body))["citizen_ref"])

        first = await identity.client.get("/v1/citizens", params={"page": 1, "size": 2}, headers=supervisor())
        last = await identity.client.get("/v1/citizens", params={"page": 3, "size": 2}, headers=supervisor())

        assert first.status_code == 200
        assert (first.json()["total"], first.json()["page"], first.json()["size"]) == (5, 1, 2)
        assert [c["citizen_ref"] for c in first.json()["items"]] == [refs[4], refs[3]]
        assert [c["citizen_ref"] for c in last.json()["items"]] == [refs[0]]
        item = first.json()["items"][0]
        assert item["full_name"] == "W**** U** 0***"
        assert item["nik"] == bodies[4]["nik"][:4] + "*" * 12
        assert "birth_date" not in item
        for body in bodies:
            assert body["nik"] not in first.text + last.text
            assert body["full_name"] not in first.text + last.text

    async def test_a_page_past_the_end_is_empty(self, identity: IdentityApi) -> None:
        await identity.register(person(40))

        response = await identity.client.get("/v1/citizens", params={"page": 9}, headers=supervisor())

        assert response.json()["items"] == []
        assert response.json()["total"] == 1

    @pytest.mark.parametrize("params", [{"size": 0}, {"size": 101}, {"page": 0}, {"page": "x"}])
    async def test_bad_paging_is_422(self, identity: IdentityApi, params: dict[str, int | str]) -> None:
        response = await identity.client.get("/v1/citizens", params=params, headers=supervisor())

        assert response.status_code == 422
