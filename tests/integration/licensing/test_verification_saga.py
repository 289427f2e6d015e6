"""The NIK verification saga on PostgreSQL: asking identity again after silence or a passing refusal,
handing exhausted applications to officers, and trusting only identity's answers to the outstanding
request, each applied once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.common import AgeBand
from mpp.contracts.events.identity import CitizenVerificationFailedV1, CitizenVerifiedV1, VerificationFailure
from mpp.licensing.app import LicensingService
from mpp.licensing.domain.model import REQUEST_LOST_REASON
from mpp.licensing.domain.verification import RetryPolicy
from mpp.licensing.persistence.tables import applications
from tests.integration.licensing.harness import (
    CITIZEN_REF,
    NOW,
    SITE,
    LicensingApi,
    identity_answer,
    officer,
    submission,
    supervisor,
    synthetic_nik,
)

POLICY = RetryPolicy(
    max_attempts=3,
    answer_timeout=timedelta(minutes=5),
    base_delay=timedelta(seconds=30),
    max_delay=timedelta(minutes=20),
)


@pytest.fixture
def saga(licensing: LicensingApi) -> LicensingApi:
    licensing.app.state.licensing.ports.policy = POLICY
    return licensing


def service(api: LicensingApi) -> LicensingService:
    svc: LicensingService = api.app.state.licensing
    return svc


async def submit(api: LicensingApi, seed: int = 1) -> str:
    response = await api.client.post("/v1/applications", json=submission(seed=seed), headers=officer())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def requests_of(api: LicensingApi, application_id: str) -> list[dict[str, Any]]:
    return [r for r in await api.verification_requests() if r["case_id"] == application_id]


async def read(api: LicensingApi, application_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/applications/{application_id}", headers=officer())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verified(request: dict[str, Any], **envelope: str) -> Envelope:
    answer = CitizenVerifiedV1(
        request_id=request["request_id"],
        case_id=request["case_id"],
        requesting_agency=request["requesting_agency"],
        citizen_ref=CITIZEN_REF,
        age_band=AgeBand.FROM_26_TO_35,
        elderly_priority=False,
        verified_at=NOW,
    )
    if envelope:
        return Envelope.wrap(answer, site=SITE, subject=request["request_id"], **envelope)  # type: ignore[arg-type]
    return identity_answer(answer)


def refused(request: dict[str, Any], reason: VerificationFailure, *, retryable: bool) -> Envelope:
    return identity_answer(
        CitizenVerificationFailedV1(
            request_id=request["request_id"],
            case_id=request["case_id"],
            requesting_agency=request["requesting_agency"],
            reason_code=reason,
            reason="Database kependudukan sedang tidak dapat diakses" if retryable else "NIK tidak terdaftar",
            retryable=retryable,
            failed_at=NOW,
        )
    )


def unavailable(request: dict[str, Any]) -> Envelope:
    return refused(request, VerificationFailure.REGISTRY_UNAVAILABLE, retryable=True)


async def submitted_events(api: LicensingApi, application_id: str) -> int:
    return sum(e.event_type == "ApplicationSubmitted" for e in await api.outbox(application_id))


async def ignored_metric(api: LicensingApi, reason: str) -> float:
    text = (await api.client.get("/metrics")).text
    line = f'mpp_licensing_verification_answers_ignored_total{{reason="{reason}"}}'
    for row in text.splitlines():
        if row.startswith(line):
            return float(row.split()[-1])
    return 0.0


class TestRetryableRefusal:
    async def test_registry_unavailable_asks_again_with_a_new_request_after_the_backoff(
        self, saga: LicensingApi
    ) -> None:
        application_id = await submit(saga, seed=11)
        [first] = await requests_of(saga, application_id)

        await saga.deliver(unavailable(first))
        body = await read(saga, application_id)
        assert body["state"] == "verifying_nik"
        assert body["nik_verification"]["attempts"] == 1

        saga.clock.at = NOW + timedelta(seconds=29)
        assert (await service(saga).sweep_verifications()).asked_again == 0
        saga.clock.at = NOW + timedelta(seconds=30)
        assert (await service(saga).sweep_verifications()).asked_again == 1

        first_again, second = await requests_of(saga, application_id)
        assert first_again == first
        assert second["request_id"] != first["request_id"]
        assert second["nik"] == first["nik"] == synthetic_nik(11)
        assert (await read(saga, application_id))["nik_verification"]["attempts"] == 2

        await saga.deliver(verified(second))
        body = await read(saga, application_id)
        assert body["state"] == "submitted"
        assert body["nik_verification"] is None
        assert await submitted_events(saga, application_id) == 1

    async def test_retryable_refusals_of_every_attempt_hand_it_to_an_officer_who_can_retry(
        self, saga: LicensingApi
    ) -> None:
        application_id = await submit(saga, seed=12)
        for attempt in range(1, POLICY.max_attempts + 1):
            asked = await requests_of(saga, application_id)
            assert len(asked) == attempt
            await saga.deliver(unavailable(asked[-1]))
            saga.clock.at += timedelta(hours=1)
            await service(saga).sweep_verifications()

        body = await read(saga, application_id)
        assert body["state"] == "nik_verification_stalled"
        assert body["state_label"].startswith("Verifikasi NIK tertunda")
        assert body["allowed_actions"] == ["retry_nik_verification"]
        assert (
            body["nik_verification"]["failure_reason"] == "Database kependudukan sedang tidak dapat diakses"
        )
        listed = await saga.client.get(
            "/v1/applications", params={"status": "nik_verification_stalled"}, headers=officer()
        )
        assert [a["id"] for a in listed.json()["items"]] == [application_id]

        retried = await saga.client.post(
            f"/v1/applications/{application_id}/actions/retry_nik_verification", headers=supervisor()
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "verifying_nik"
        asked = await requests_of(saga, application_id)
        assert len(asked) == POLICY.max_attempts + 1
        assert asked[-1]["officer_ref"] == "supervisor-1"
        assert len({r["request_id"] for r in asked}) == len(asked)

        await saga.deliver(verified(asked[-1]))
        assert (await read(saga, application_id))["state"] == "submitted"
        assert await submitted_events(saga, application_id) == 1

    async def test_only_a_stalled_application_can_be_retried(self, saga: LicensingApi) -> None:
        application_id = await submit(saga, seed=13)

        response = await saga.client.post(
            f"/v1/applications/{application_id}/actions/retry_nik_verification", headers=officer()
        )

        assert response.status_code == 409
        assert len(await requests_of(saga, application_id)) == 1

    @pytest.mark.parametrize(
        "reason",
        [
            VerificationFailure.NOT_FOUND,
            VerificationFailure.INACTIVE,
            VerificationFailure.INVALID_STRUCTURE,
            VerificationFailure.NOT_AUTHORISED,
        ],
    )
    async def test_final_refusals_reject_as_before(
        self, saga: LicensingApi, reason: VerificationFailure
    ) -> None:
        application_id = await submit(saga, seed=14)
        [request] = await requests_of(saga, application_id)

        await saga.deliver(refused(request, reason, retryable=False))
        saga.clock.at += timedelta(days=1)
        swept = await service(saga).sweep_verifications()

        assert (await read(saga, application_id))["state"] == "nik_rejected"
        assert swept.asked_again == swept.stalled == 0
        assert len(await requests_of(saga, application_id)) == 1


class TestTimeoutSweep:
    async def test_an_unanswered_request_is_published_again_with_the_same_request_id(
        self, saga: LicensingApi
    ) -> None:
        application_id = await submit(saga, seed=21)
        saga.clock.at = NOW + timedelta(minutes=4, seconds=59)
        assert (await service(saga).sweep_verifications()).asked_again == 0

        saga.clock.at = NOW + timedelta(minutes=5)
        assert (await service(saga).sweep_verifications()).asked_again == 1
        # The next wait doubles: nothing more is due five minutes later.
        saga.clock.at = NOW + timedelta(minutes=10)
        assert (await service(saga).sweep_verifications()).asked_again == 0

        first, again = await requests_of(saga, application_id)
        assert again == first
        await saga.deliver(verified(first))
        assert (await read(saga, application_id))["state"] == "submitted"

    async def test_silence_through_every_attempt_stalls_the_application(self, saga: LicensingApi) -> None:
        application_id = await submit(saga, seed=22)
        for _ in range(POLICY.max_attempts + 1):
            saga.clock.at += timedelta(hours=1)
            await service(saga).sweep_verifications()

        body = await read(saga, application_id)
        assert body["state"] == "nik_verification_stalled"
        assert (
            body["nik_verification"]["failure_reason"]
            == "Layanan kependudukan tidak menjawab permintaan verifikasi NIK"
        )
        asked = await requests_of(saga, application_id)
        assert len(asked) == POLICY.max_attempts
        assert {r["request_id"] for r in asked} == {asked[0]["request_id"]}

        # Identity's answer to the outstanding request, arriving late, still starts the workflow.
        await saga.deliver(verified(asked[0]))
        assert (await read(saga, application_id))["state"] == "submitted"

    async def test_a_batch_larger_than_one_transaction_is_swept_in_one_pass(self, saga: LicensingApi) -> None:
        ids = [await submit(saga, seed=100 + n) for n in range(5)]
        saga.clock.at = NOW + timedelta(minutes=6)

        assert (await service(saga).sweep_verifications(batch=2)).asked_again == 5
        for application_id in ids:
            assert len(await requests_of(saga, application_id)) == 2

    async def test_concurrent_sweeps_ask_each_application_again_once(self, saga: LicensingApi) -> None:
        ids = [await submit(saga, seed=200 + n) for n in range(20)]
        saga.clock.at = NOW + timedelta(minutes=6)

        results = await asyncio.gather(*(service(saga).sweep_verifications() for _ in range(4)))

        assert sum(r.asked_again for r in results) == 20
        for application_id in ids:
            assert len(await requests_of(saga, application_id)) == 2

    async def test_a_request_that_cannot_be_read_back_stalls_only_its_application(
        self, saga: LicensingApi
    ) -> None:
        lost = await submit(saga, seed=24)
        kept = await submit(saga, seed=25)
        async with saga.engine.begin() as conn:
            await conn.execute(
                applications.update()
                .where(applications.c.id == lost)
                .values(verification_request=b"\x01damaged")
            )
        saga.clock.at = NOW + timedelta(minutes=6)

        swept = await service(saga).sweep_verifications()

        assert (swept.asked_again, swept.stalled) == (1, 1)
        body = await read(saga, lost)
        assert body["state"] == "nik_verification_stalled"
        assert body["nik_verification"]["failure_reason"] == REQUEST_LOST_REASON
        retried = await saga.client.post(
            f"/v1/applications/{lost}/actions/retry_nik_verification", headers=officer()
        )
        assert retried.status_code == 409
        assert len(await requests_of(saga, kept)) == 2

    async def test_the_nik_is_kept_sealed_while_waiting_and_forgotten_once_settled(
        self, saga: LicensingApi
    ) -> None:
        nik = synthetic_nik(23)
        application_id = await submit(saga, seed=23)

        async def stored() -> Any:
            async with saga.engine.connect() as conn:
                return (await conn.execute(select(applications))).one()

        waiting = await stored()
        assert waiting.verification_request is not None
        assert nik.encode() not in bytes(waiting.verification_request)
        assert nik not in str(list(waiting))

        [request] = await requests_of(saga, application_id)
        await saga.deliver(verified(request))
        assert (await stored()).verification_request is None


class TestTrust:
    async def test_an_answer_not_published_by_identity_is_ignored_and_counted(
        self, saga: LicensingApi
    ) -> None:
        application_id = await submit(saga, seed=31)
        [request] = await requests_of(saga, application_id)
        before = await ignored_metric(saga, "foreign_producer")

        await saga.deliver(
            verified(request, producer="mpp.queue", agency="disdukcapil"),
            verified(request, producer="mpp.identity", agency="dpmptsp"),
        )

        assert (await read(saga, application_id))["state"] == "verifying_nik"
        assert await ignored_metric(saga, "foreign_producer") == before + 2
        await saga.deliver(verified(request))
        assert (await read(saga, application_id))["state"] == "submitted"

    async def test_an_answer_to_a_replaced_request_is_stale(self, saga: LicensingApi) -> None:
        application_id = await submit(saga, seed=32)
        [first] = await requests_of(saga, application_id)
        await saga.deliver(unavailable(first))
        before = await ignored_metric(saga, "stale")

        await saga.deliver(verified(first))

        assert (await read(saga, application_id))["state"] == "verifying_nik"
        assert await ignored_metric(saga, "stale") == before + 1

    async def test_an_answer_naming_another_case_or_agency_is_ignored(self, saga: LicensingApi) -> None:
        application_id = await submit(saga, seed=33)
        other_id = await submit(saga, seed=34)
        [request] = await requests_of(saga, application_id)

        await saga.deliver(
            verified({**request, "case_id": other_id}),
            verified({**request, "requesting_agency": "kantah"}),
        )

        assert (await read(saga, application_id))["state"] == "verifying_nik"
        assert (await read(saga, other_id))["state"] == "verifying_nik"
        assert await ignored_metric(saga, "mismatched") == 2

    async def test_answers_to_other_services_requests_change_nothing(self, saga: LicensingApi) -> None:
        before = await saga.stored()

        await saga.deliver(
            verified(
                {"request_id": str(uuid.uuid4()), "case_id": "ticket-1", "requesting_agency": "disdukcapil"}
            )
        )

        assert await saga.stored() == before
        assert await ignored_metric(saga, "not_ours") == 1

    async def test_repeated_and_redelivered_answers_emit_application_submitted_once(
        self, saga: LicensingApi
    ) -> None:
        application_id = await submit(saga, seed=35)
        [request] = await requests_of(saga, application_id)
        answer = verified(request)

        await saga.deliver(answer, verified(request))
        await saga.deliver(answer)
        await saga.deliver(refused(request, VerificationFailure.NOT_FOUND, retryable=False))

        assert (await read(saga, application_id))["state"] == "submitted"
        assert await submitted_events(saga, application_id) == 1
        assert await ignored_metric(saga, "settled") == 3
