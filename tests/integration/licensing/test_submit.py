"""Submitting an application over HTTP on PostgreSQL: the response, the outbox row and idempotent retries."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.licensing.harness import (
    SERVICE_TYPE,
    SITE,
    LicensingApi,
    officer,
    submission,
    synthetic_nik,
)

pytestmark = pytest.mark.integration

IDEMPOTENCY_KEY = "retry-7f3c2a91"


class TestSubmitApplication:
    async def test_answers_201_with_id_tracking_code_status_and_location(
        self, licensing: LicensingApi
    ) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "submitted"
        assert body["service_type"] == SERVICE_TYPE
        assert body["agency"] == "dpmptsp"
        assert body["site"] == SITE
        assert body["state"] == "submitted"
        assert body["state_label"] == "Permohonan diterima, verifikasi administrasi"
        assert body["allowed_actions"] == ["verify", "return"]
        assert body["due_at"] == "2026-12-11T09:00:00Z"
        assert (body["paused"], body["sla_status"]) == (False, "on_track")
        assert body["permit_number"] is None
        assert len(body["tracking_code"]) == 10
        assert response.headers["Location"] == f"/v1/applications/{body['id']}"

    async def test_the_created_application_can_be_read_back(self, licensing: LicensingApi) -> None:
        created = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        read = await licensing.client.get(created.headers["Location"], headers=officer("officer-2"))

        assert read.status_code == 200
        assert read.json() == created.json()

    async def test_outbox_holds_exactly_one_application_submitted_event(
        self, licensing: LicensingApi
    ) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())
        application_id = response.json()["id"]

        entries = await licensing.outbox(application_id)

        assert [e.event_type for e in entries] == ["ApplicationSubmitted"]
        payload = json.loads(entries[0].value)
        assert payload["application_id"] == application_id
        assert payload["tracking_code"] == response.json()["tracking_code"]
        assert payload["applicant_ref"].startswith("c_")
        assert await licensing.outbox_size() == 1

    async def test_outbox_event_carries_neither_the_nik_nor_the_applicant_name(
        self, licensing: LicensingApi
    ) -> None:
        nik = synthetic_nik(seed=4242)
        name = "Bambang Suryadinata"

        response = await licensing.client.post(
            "/v1/applications", json=submission(seed=4242, name=name), headers=officer()
        )

        [entry] = await licensing.outbox(response.json()["id"])
        assert nik.encode() not in entry.value
        assert name.encode() not in entry.value
        assert name.split()[1].encode() not in entry.value
        assert not any(nik in v or name in v for v in entry.headers.values())

    async def test_the_response_does_not_echo_the_nik(self, licensing: LicensingApi) -> None:
        nik = synthetic_nik(seed=77)

        response = await licensing.client.post(
            "/v1/applications", json=submission(seed=77), headers=officer()
        )

        assert response.status_code == 201
        assert nik not in response.text


class TestIdempotentSubmit:
    async def test_retry_with_the_same_key_and_body_replays_the_first_response(
        self, licensing: LicensingApi
    ) -> None:
        headers = {**officer(), "Idempotency-Key": IDEMPOTENCY_KEY}
        first = await licensing.client.post("/v1/applications", json=submission(), headers=headers)

        retry = await licensing.client.post("/v1/applications", json=submission(), headers=headers)

        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert retry.headers["Location"] == first.headers["Location"]
        assert await licensing.application_count() == 1
        assert len(await licensing.outbox(first.json()["id"])) == 1
        assert await licensing.outbox_size() == 1

    async def test_same_key_with_a_different_body_is_refused(self, licensing: LicensingApi) -> None:
        headers = {**officer(), "Idempotency-Key": IDEMPOTENCY_KEY}
        first = await licensing.client.post("/v1/applications", json=submission(seed=1), headers=headers)

        reused = await licensing.client.post("/v1/applications", json=submission(seed=2), headers=headers)

        assert first.status_code == 201
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert await licensing.application_count() == 1

    async def test_the_same_key_of_another_caller_is_a_separate_request(
        self, licensing: LicensingApi
    ) -> None:
        first = await licensing.client.post(
            "/v1/applications",
            json=submission(),
            headers={**officer("officer-1"), "Idempotency-Key": IDEMPOTENCY_KEY},
        )

        second = await licensing.client.post(
            "/v1/applications",
            json=submission(),
            headers={**officer("officer-2"), "Idempotency-Key": IDEMPOTENCY_KEY},
        )

        assert first.status_code == second.status_code == 201
        assert second.json()["id"] != first.json()["id"]
        assert "Idempotent-Replayed" not in second.headers
        assert await licensing.application_count() == 2

    async def test_concurrent_requests_with_the_same_key_create_one_application(
        self, licensing: LicensingApi
    ) -> None:
        headers = {**officer(), "Idempotency-Key": IDEMPOTENCY_KEY}

        responses = await asyncio.gather(
            *(
                licensing.client.post("/v1/applications", json=submission(), headers=headers)
                for _ in range(10)
            )
        )

        assert [r.status_code for r in responses] == [201] * 10
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
        assert await licensing.application_count() == 1
        assert await licensing.outbox_size() == 1

    async def test_requests_without_a_key_are_not_deduplicated(self, licensing: LicensingApi) -> None:
        first = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        second = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        assert first.status_code == second.status_code == 201
        assert first.json()["id"] != second.json()["id"]
        assert await licensing.application_count() == 2
