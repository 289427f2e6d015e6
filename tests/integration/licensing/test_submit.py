"""Submitting an application over HTTP on PostgreSQL: the response, the outbox row and idempotent retries."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from mpp.contracts.events.common import AgeBand
from mpp.contracts.events.identity import CitizenVerifiedV1
from mpp.licensing.persistence.tables import applications
from tests.integration.licensing.harness import (
    CITIZEN_REF,
    NOW,
    SERVICE_TYPE,
    SITE,
    LicensingApi,
    act,
    identity_answer,
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
        assert body["status"] == "verifying_nik"
        assert body["service_type"] == SERVICE_TYPE
        assert body["agency"] == "dpmptsp"
        assert body["site"] == SITE
        assert body["state"] == "verifying_nik"
        assert body["state_label"] == "Menunggu verifikasi NIK"
        assert body["allowed_actions"] == []
        assert body["due_at"] is None
        assert (body["paused"], body["sla_status"]) == (False, "on_track")
        assert body["permit_number"] is None
        assert len(body["tracking_code"]) == 10
        assert response.headers["Location"] == f"/v1/applications/{body['id']}"

    async def test_the_created_application_can_be_read_back(self, licensing: LicensingApi) -> None:
        created = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        read = await licensing.client.get(created.headers["Location"], headers=officer("officer-2"))

        assert read.status_code == 200
        assert read.json() == created.json()

    async def test_outbox_holds_a_verification_request_with_the_nik_and_no_application_submitted(
        self, licensing: LicensingApi
    ) -> None:
        nik = synthetic_nik(seed=5)
        response = await licensing.client.post(
            "/v1/applications", json=submission(seed=5), headers=officer("officer-7")
        )
        application_id = response.json()["id"]

        [request] = await licensing.verification_requests()

        assert request["nik"] == nik
        assert request["case_id"] == application_id
        assert request["requesting_agency"] == "dpmptsp"
        assert request["requesting_service"] == "mpp.licensing"
        assert request["officer_ref"] == "officer-7"
        assert request["purpose"] == "permit_application"
        assert uuid.UUID(request["request_id"])
        assert await licensing.outbox(application_id) == []
        assert await licensing.outbox_size() == 0

    async def test_the_application_row_does_not_keep_the_nik(self, licensing: LicensingApi) -> None:
        nik = synthetic_nik(seed=6)
        response = await licensing.client.post("/v1/applications", json=submission(seed=6), headers=officer())
        await licensing.nik_verified(response.json()["id"])

        async with licensing.engine.connect() as conn:
            [row] = (await conn.execute(select(applications))).all()

        assert nik not in json.dumps([str(v) for v in row])
        assert row.verification_request_id == (await licensing.verification_requests())[0]["request_id"]

    async def test_outbox_event_carries_neither_the_nik_nor_the_applicant_name(
        self, licensing: LicensingApi
    ) -> None:
        nik = synthetic_nik(seed=4242)
        name = "Bambang Suryadinata"

        application_id = await licensing.submit(submission(seed=4242, name=name), officer())

        [entry] = await licensing.outbox(application_id)
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
        assert len(await licensing.verification_requests()) == 1

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
        assert len(await licensing.verification_requests()) == 1

    async def test_requests_without_a_key_are_not_deduplicated(self, licensing: LicensingApi) -> None:
        first = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        second = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        assert first.status_code == second.status_code == 201
        assert first.json()["id"] != second.json()["id"]
        assert await licensing.application_count() == 2


class TestNikVerification:
    async def test_a_verified_nik_starts_the_workflow_with_identitys_reference(
        self, licensing: LicensingApi
    ) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())
        application_id = response.json()["id"]
        licensing.clock.at = NOW + timedelta(minutes=20)

        await licensing.nik_verified(application_id, CITIZEN_REF)

        body = (await licensing.client.get(f"/v1/applications/{application_id}", headers=officer())).json()
        assert body["state"] == "submitted"
        assert body["state_label"] == "Permohonan diterima, verifikasi administrasi"
        assert body["allowed_actions"] == ["verify", "return"]
        # The SLA clock counts from the submission, not from the verification.
        assert body["due_at"] == "2026-12-11T09:00:00Z"
        [entry] = await licensing.outbox(application_id)
        assert entry.event_type == "ApplicationSubmitted"
        payload = json.loads(entry.value)
        assert payload["applicant_ref"] == CITIZEN_REF
        assert payload["application_id"] == application_id
        assert payload["tracking_code"] == response.json()["tracking_code"]
        assert payload["submitted_at"].startswith("2026-11-03T02:15:00")

    async def test_a_refused_nik_ends_the_application_without_application_submitted(
        self, licensing: LicensingApi
    ) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())
        application_id = response.json()["id"]

        await licensing.nik_refused(application_id)

        body = (await licensing.client.get(f"/v1/applications/{application_id}", headers=officer())).json()
        assert body["state"] == "nik_rejected"
        assert body["state_label"] == "NIK tidak dapat diverifikasi"
        assert body["allowed_actions"] == []
        async with licensing.engine.connect() as conn:
            reason = (await conn.execute(select(applications.c.nik_failure_reason))).scalar_one()
        assert reason == "NIK tidak terdaftar"
        assert await licensing.outbox_size() == 0
        tracked = await licensing.client.get(f"/v1/track/{response.json()['tracking_code']}")
        assert (tracked.json()["status"], tracked.json()["finished"]) == ("nik_rejected", True)

    async def test_a_result_for_a_request_it_did_not_make_is_ignored(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())
        application_id = response.json()["id"]
        request = await licensing.verification_request(application_id)
        foreign = identity_answer(
            CitizenVerifiedV1(
                request_id=str(uuid.uuid4()),
                case_id=application_id,
                requesting_agency="polres",
                citizen_ref=CITIZEN_REF,
                age_band=AgeBand.FROM_26_TO_35,
                elderly_priority=False,
                verified_at=NOW,
            )
        )

        await licensing.deliver(foreign)

        body = (await licensing.client.get(f"/v1/applications/{application_id}", headers=officer())).json()
        assert body["state"] == "verifying_nik"
        assert await licensing.outbox_size() == 0
        assert request["request_id"] != foreign.subject

    async def test_a_repeated_result_is_applied_once(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())
        application_id = response.json()["id"]

        answer = await licensing.nik_verified(application_id)
        await licensing.deliver(answer, answer)
        await licensing.nik_refused(application_id)

        body = (await licensing.client.get(f"/v1/applications/{application_id}", headers=officer())).json()
        assert body["state"] == "submitted"
        assert [e.event_type for e in await licensing.outbox(application_id)] == ["ApplicationSubmitted"]

    async def test_an_action_while_the_nik_is_verified_is_409(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post("/v1/applications", json=submission(), headers=officer())

        refused = await act(licensing, response.json()["id"], "verify", officer())

        assert refused.status_code == 409
        assert refused.json()["error"]["details"] == {"current_state": "verifying_nik", "allowed_actions": []}
