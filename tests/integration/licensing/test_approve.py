"""Approving an application over HTTP on PostgreSQL: the permit, its outbox events, conflicts and races."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.licensing.harness import NOW, LicensingApi, officer, submission

pytestmark = pytest.mark.integration


async def _submit(api: LicensingApi, *, seed: int = 1, service_type: str = "dpmptsp.pbg") -> str:
    response = await api.client.post(
        "/v1/applications", json=submission(seed=seed, service_type=service_type), headers=officer()
    )
    assert response.status_code == 201, response.text
    application_id: str = response.json()["id"]
    return application_id


async def _race(api: LicensingApi, application_id: str) -> list[httpx.Response]:
    """Two officers approve the same application at the same moment."""
    url = f"/v1/applications/{application_id}/approve"
    return list(
        await asyncio.gather(
            api.client.post(url, headers=officer("officer-1")),
            api.client.post(url, headers=officer("officer-2")),
        )
    )


class TestApproveApplication:
    async def test_issues_the_permit_with_a_decree_style_number(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)

        response = await licensing.client.post(
            f"/v1/applications/{application_id}/approve", headers=officer("officer-2")
        )

        assert response.status_code == 200
        body = response.json()
        assert body["id"] == application_id
        assert body["status"] == "permit_issued"
        assert body["permit_number"] == "0001/DPMPTSP/PBG/XI/2026"
        assert datetime.fromisoformat(body["approved_at"]) == NOW
        assert body["allowed_actions"] == []

    async def test_outbox_holds_approved_and_permit_issued_after_submitted(
        self, licensing: LicensingApi
    ) -> None:
        application_id = await _submit(licensing)

        response = await licensing.client.post(
            f"/v1/applications/{application_id}/approve", headers=officer("officer-2")
        )

        entries = await licensing.outbox(application_id)
        assert [e.event_type for e in entries] == [
            "ApplicationSubmitted",
            "ApplicationApproved",
            "PermitIssued",
        ]
        approved, issued = (json.loads(e.value) for e in entries[1:])
        assert approved["officer_ref"] == "officer-2"
        assert issued["permit_number"] == response.json()["permit_number"]
        assert issued["application_id"] == application_id
        assert entries[2].headers["ce_causationid"] == application_id

    async def test_the_approval_is_stored(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)
        approved = await licensing.client.post(
            f"/v1/applications/{application_id}/approve", headers=officer()
        )

        read = await licensing.client.get(f"/v1/applications/{application_id}", headers=officer("officer-3"))

        assert read.status_code == 200
        assert read.json() == approved.json()

    async def test_approving_again_is_a_conflict_naming_state_and_allowed_actions(
        self, licensing: LicensingApi
    ) -> None:
        application_id = await _submit(licensing)
        first = await licensing.client.post(f"/v1/applications/{application_id}/approve", headers=officer())

        again = await licensing.client.post(
            f"/v1/applications/{application_id}/approve", headers=officer("officer-2")
        )

        assert first.status_code == 200
        assert again.status_code == 409
        error = again.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["details"] == {"current_state": "permit_issued", "allowed_actions": []}
        assert "permit_issued" in error["message"]
        assert [e.event_type for e in await licensing.outbox(application_id)].count("PermitIssued") == 1

    async def test_approving_a_missing_application_is_not_found(self, licensing: LicensingApi) -> None:
        response = await licensing.client.post(
            "/v1/applications/00000000-0000-4000-8000-000000000000/approve", headers=officer()
        )

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert await licensing.outbox_size() == 0


class TestConcurrentApproval:
    async def test_two_officers_approving_at_once_issue_one_permit(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)

        responses = await _race(licensing, application_id)

        assert sorted(r.status_code for r in responses) == [200, 409]
        [winner] = [r for r in responses if r.status_code == 200]
        [loser] = [r for r in responses if r.status_code == 409]
        assert loser.json()["error"]["code"] in {"invalid_transition", "concurrent_update"}
        issued = [e for e in await licensing.outbox(application_id) if e.event_type == "PermitIssued"]
        assert len(issued) == 1
        assert json.loads(issued[0].value)["permit_number"] == winner.json()["permit_number"]

    async def test_races_on_many_applications_each_issue_exactly_one_permit(
        self, licensing: LicensingApi
    ) -> None:
        ids = [await _submit(licensing, seed=seed) for seed in range(6)]

        races = await asyncio.gather(*(_race(licensing, application_id) for application_id in ids))

        assert [sorted(r.status_code for r in race) for race in races] == [[200, 409]] * len(ids)
        for application_id in ids:
            types = [e.event_type for e in await licensing.outbox(application_id)]
            assert types.count("PermitIssued") == 1
            assert types.count("ApplicationApproved") == 1
        numbers = [r.json()["permit_number"] for race in races for r in race if r.status_code == 200]
        assert sorted(numbers) == [f"{n:04d}/DPMPTSP/PBG/XI/2026" for n in range(1, len(ids) + 1)]


class TestPermitNumbering:
    async def test_many_concurrent_approvals_get_unique_consecutive_numbers(
        self, licensing: LicensingApi
    ) -> None:
        ids = [await _submit(licensing, seed=seed) for seed in range(12)]
        ids += [await _submit(licensing, seed=seed, service_type="dpmptsp.nib") for seed in range(12, 20)]

        responses = await asyncio.gather(
            *(
                licensing.client.post(f"/v1/applications/{application_id}/approve", headers=officer())
                for application_id in ids
            )
        )

        assert [r.status_code for r in responses] == [200] * len(ids)
        numbers = [r.json()["permit_number"] for r in responses]
        assert len(set(numbers)) == len(ids)
        assert sorted(int(n.split("/")[0]) for n in numbers) == list(range(1, len(ids) + 1))
        assert {n.split("/", 2)[2] for n in numbers} == {"PBG/XI/2026", "NIB/XI/2026"}

    async def test_numbering_restarts_in_a_new_year(self, licensing: LicensingApi) -> None:
        last_year = await _submit(licensing, seed=1)
        this_year = await _submit(licensing, seed=2)
        await licensing.client.post(f"/v1/applications/{last_year}/approve", headers=officer())
        licensing.clock.at = datetime(2027, 1, 4, 1, 0, tzinfo=UTC)

        response = await licensing.client.post(f"/v1/applications/{this_year}/approve", headers=officer())

        assert response.json()["permit_number"] == "0001/DPMPTSP/PBG/I/2027"
