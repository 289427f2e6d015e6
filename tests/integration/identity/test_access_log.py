"""The access log on PostgreSQL: verification answers written by the consumer's handler (called directly,
without Kafka) and officers' reads, listed to the citizen they are about (right of access)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.identity import CitizenVerificationRequestedV1, VerificationPurpose
from mpp.contracts.topics import IDENTITY_VERIFICATION_REQUESTS
from mpp.kit.auth import Role
from mpp.kit.consumer import ReceivedEvent
from tests.integration.identity.harness import NOW, SITE, IdentityApi, bearer, citizen, officer, person

pytestmark = pytest.mark.integration


def _request(
    nik: str, *, agency: str = "dpmptsp", case_id: str = "case-1", officer_ref: str = "loket-3"
) -> Envelope:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    return Envelope.wrap(
        CitizenVerificationRequestedV1(
            request_id=request_id,
            nik=nik,
            requesting_agency=agency,
            requesting_service="mpp.licensing",
            officer_ref=officer_ref,
            case_id=case_id,
            purpose=VerificationPurpose.PERMIT_APPLICATION,
            requested_at=NOW,
        ),
        producer="mpp.licensing",
        agency=agency,
        site=SITE,
        subject=request_id,
    )


async def _verify(identity: IdentityApi, requests: Sequence[Envelope]) -> None:
    """Run the verifier's batch handler in one transaction, as the consumer would."""
    runtime = identity.app.state.identity.runtime
    [spec] = runtime.consumer_specs
    events = [ReceivedEvent(env, IDENTITY_VERIFICATION_REQUESTS, 0, i) for i, env in enumerate(requests)]
    async with runtime.sessions() as session, session.begin():
        await spec.handler(session, events)


class TestMyAccessLog:
    async def test_a_citizen_sees_each_lookup_newest_first(self, identity: IdentityApi) -> None:
        body = person(1)
        ref = (await identity.register(body))["citizen_ref"]
        await _verify(identity, [_request(body["nik"], agency="dpmptsp", case_id="permit-1")])
        identity.clock.at = NOW + timedelta(minutes=5)
        await _verify(
            identity, [_request(body["nik"], agency="polres", case_id="skck-7", officer_ref="polres-2")]
        )
        identity.clock.at = NOW + timedelta(minutes=9)
        await identity.client.get(f"/v1/citizens/{ref}", headers=officer("petugas-dukcapil-4"))

        response = await identity.client.get("/v1/me/access-log", headers=citizen(ref))

        assert response.status_code == 200
        assert response.json()["total"] == 3
        items = response.json()["items"]
        assert [(i["agency"], i["channel"], i["outcome"]) for i in items] == [
            ("disdukcapil", "http", "read"),
            ("polres", "event", "verified"),
            ("dpmptsp", "event", "verified"),
        ]
        assert items[0]["officer_ref"] == "petugas-dukcapil-4"
        assert items[0]["purpose"] == "registry_record_read"
        assert items[1] | {"at": None} == {
            "at": None,
            "agency": "polres",
            "service": "mpp.licensing",
            "officer_ref": "polres-2",
            "case_id": "skck-7",
            "purpose": "permit_application",
            "channel": "event",
            "outcome": "verified",
            "reason_code": None,
        }
        assert items[1]["at"].startswith("2026-11-03T02:20")
        assert body["nik"] not in response.text

    async def test_the_log_is_paged(self, identity: IdentityApi) -> None:
        body = person(2)
        ref = (await identity.register(body))["citizen_ref"]
        await _verify(identity, [_request(body["nik"], case_id=f"case-{i}") for i in range(5)])

        first = await identity.client.get("/v1/me/access-log", params={"size": 2}, headers=citizen(ref))
        third = await identity.client.get(
            "/v1/me/access-log", params={"page": 3, "size": 2}, headers=citizen(ref)
        )

        assert first.json()["total"] == 5
        assert len(first.json()["items"]) == 2
        assert len(third.json()["items"]) == 1

    async def test_a_citizen_sees_refused_lookups_too(self, identity: IdentityApi) -> None:
        body = person(3)
        ref = (await identity.register(body))["citizen_ref"]
        await identity.client.put(
            f"/v1/citizens/{ref}/status",
            json={"status": "deceased"},
            headers=bearer(roles=[Role.SUPERVISOR], subject="supervisor-1"),
        )
        await _verify(identity, [_request(body["nik"])])

        items = (await identity.client.get("/v1/me/access-log", headers=citizen(ref))).json()["items"]

        assert [(i["outcome"], i["reason_code"]) for i in items] == [("refused", "inactive")]

    async def test_lookups_of_a_nik_made_before_it_was_registered_are_listed(
        self, identity: IdentityApi
    ) -> None:
        body = person(4)
        await _verify(identity, [_request(body["nik"], agency="bapenda", case_id="pbb-1")])
        ref = (await identity.register(body))["citizen_ref"]

        items = (await identity.client.get("/v1/me/access-log", headers=citizen(ref))).json()["items"]

        assert [(i["agency"], i["outcome"], i["reason_code"]) for i in items] == [
            ("bapenda", "refused", "not_found")
        ]

    async def test_a_citizen_sees_nobody_elses_lookups(self, identity: IdentityApi) -> None:
        mine, theirs = person(5), person(6)
        my_ref = (await identity.register(mine))["citizen_ref"]
        await identity.register(theirs)
        await _verify(identity, [_request(theirs["nik"]), _request(person(7)["nik"])])

        response = await identity.client.get("/v1/me/access-log", headers=citizen(my_ref))

        assert response.json() == {"items": [], "page": 1, "size": 20, "total": 0}

    async def test_an_unknown_reference_gets_an_empty_log(self, identity: IdentityApi) -> None:
        response = await identity.client.get(
            "/v1/me/access-log", headers=citizen("c_99999999999999999999999999999999")
        )

        assert response.status_code == 200
        assert response.json()["items"] == []

    @pytest.mark.parametrize("role", [Role.OFFICER, Role.SUPERVISOR, Role.OPERATOR, Role.MINISTRY])
    async def test_tokens_of_other_roles_are_403(self, identity: IdentityApi, role: Role) -> None:
        ref = (await identity.register(person(8)))["citizen_ref"]

        response = await identity.client.get("/v1/me/access-log", headers=bearer(roles=[role], subject=ref))

        assert response.status_code == 403

    async def test_without_a_token_it_is_401(self, identity: IdentityApi) -> None:
        response = await identity.client.get("/v1/me/access-log")

        assert response.status_code == 401


class TestAccessLogRows:
    async def test_rows_name_citizens_by_reference_or_keyed_hash_and_never_hold_a_nik(
        self, identity: IdentityApi
    ) -> None:
        known = person(10)
        ref = (await identity.register(known))["citizen_ref"]
        unknown = person(11)["nik"]
        invalid = "3298019913850003"

        await _verify(identity, [_request(known["nik"]), _request(unknown), _request(invalid)])

        rows = await identity.access_rows()
        assert [(r["citizen_ref"], r["outcome"], r["reason_code"]) for r in rows] == [
            (ref, "verified", None),
            (None, "refused", "not_found"),
            (None, "refused", "invalid_structure"),
        ]
        assert rows[0]["subject_hash"] is None
        assert all(len(r["subject_hash"]) == 64 for r in rows[1:])
        dumped = repr(rows)
        for nik in (known["nik"], unknown, invalid):
            assert nik not in dumped
