"""Workflow actions over HTTP on PostgreSQL: permits, outbox events, refusals, races and the SLA watch."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mpp.kit.auth import Role
from mpp.licensing.handlers import flag_sla_breaches
from tests.integration.licensing.harness import (
    NOW,
    OTHER_SITE,
    LicensingApi,
    act,
    bearer,
    carry_to_permit,
    officer,
    submission,
    supervisor,
)

pytestmark = pytest.mark.integration

MISSING_ID = "00000000-0000-4000-8000-000000000000"


async def _submit(api: LicensingApi, *, seed: int = 1, service_type: str = "dpmptsp.pbg") -> str:
    return await api.submit(submission(seed=seed, service_type=service_type), officer())


async def _verified(api: LicensingApi, *, seed: int = 1, service_type: str = "dpmptsp.pbg") -> str:
    application_id = await _submit(api, seed=seed, service_type=service_type)
    assert (await act(api, application_id, "verify", officer())).status_code == 200
    return application_id


async def _race(api: LicensingApi, application_id: str) -> list[httpx.Response]:
    """Two supervisors approve the same application at the same moment."""
    return list(
        await asyncio.gather(
            act(api, application_id, "approve", supervisor("supervisor-1")),
            act(api, application_id, "approve", supervisor("supervisor-2")),
        )
    )


async def _flag(api: LicensingApi) -> int:
    service = api.app.state.licensing
    async with service.uow() as uow:
        flagged = await flag_sla_breaches(uow, api.clock)
        await uow.commit()
    return flagged


class TestActOnApplication:
    async def test_the_workflow_path_issues_the_permit_with_a_decree_style_number(
        self, licensing: LicensingApi
    ) -> None:
        application_id = await _submit(licensing)

        response = await carry_to_permit(licensing, application_id)

        assert response.status_code == 200
        body = response.json()
        assert body["id"] == application_id
        assert body["state"] == "permit_issued"
        assert body["state_label"] == "PBG terbit"
        assert body["permit_number"] == "0001/DPMPTSP/PBG/XI/2026"
        assert datetime.fromisoformat(body["issued_at"]) == NOW
        assert body["allowed_actions"] == ["revoke"]

    async def test_outbox_holds_one_contract_event_per_emitting_action(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)

        response = await carry_to_permit(licensing, application_id)

        entries = await licensing.outbox(application_id)
        assert [e.event_type for e in entries] == [
            "ApplicationSubmitted",
            "ApplicationVerified",
            "ApplicationApproved",
            "PermitIssued",
        ]
        verified, approved, issued = (json.loads(e.value) for e in entries[1:])
        assert verified["officer_ref"] == "officer-1"
        assert approved["officer_ref"] == "supervisor-1"
        assert approved["working_days_elapsed"] == 0
        assert issued["permit_number"] == response.json()["permit_number"]
        assert issued["within_sla"] is True
        assert entries[3].headers["ce_causationid"] == application_id

    async def test_return_and_resubmit_pause_and_restart_the_clock(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing, service_type="dpmptsp.izin-usaha-toko-swalayan")

        returned = await act(
            licensing,
            application_id,
            "return",
            officer(),
            reason="Lengkapi dokumen lingkungan",
            missing=["dokumen-lingkungan"],
        )
        licensing.clock.at = NOW + timedelta(days=7)
        resubmitted = await act(licensing, application_id, "resubmit", officer())

        assert returned.status_code == 200
        assert (returned.json()["paused"], returned.json()["due_at"]) == (True, None)
        assert returned.json()["state_label"] == "Dikembalikan untuk perbaikan"
        assert resubmitted.json()["paused"] is False
        # Returned on the day of receipt, resubmitted a week later: 10 working days after 10 November.
        assert resubmitted.json()["due_at"] == "2026-11-24T09:00:00Z"
        entries = await licensing.outbox(application_id)
        assert [e.event_type for e in entries][1:] == ["ApplicationReturned", "ApplicationResubmitted"]
        assert json.loads(entries[1].value)["missing"] == ["dokumen-lingkungan"]

    async def test_an_action_needs_no_body(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)

        response = await licensing.client.post(
            f"/v1/applications/{application_id}/actions/verify", headers=officer()
        )

        assert response.status_code == 200
        assert response.json()["state"] == "technical_review"

    async def test_the_action_is_stored(self, licensing: LicensingApi) -> None:
        application_id = await _verified(licensing)
        approved = await act(licensing, application_id, "approve", supervisor())

        read = await licensing.client.get(f"/v1/applications/{application_id}", headers=supervisor("s-3"))

        assert read.status_code == 200
        assert read.json() == approved.json()

    async def test_allowed_actions_are_those_of_the_callers_roles(self, licensing: LicensingApi) -> None:
        application_id = await _verified(licensing)

        as_officer = await licensing.client.get(f"/v1/applications/{application_id}", headers=officer())
        as_supervisor = await licensing.client.get(f"/v1/applications/{application_id}", headers=supervisor())

        assert as_officer.json()["allowed_actions"] == ["return"]
        assert as_supervisor.json()["allowed_actions"] == ["approve", "reject"]


class TestRefusedActions:
    async def test_an_action_not_allowed_in_the_state_is_409_naming_state_and_allowed_actions(
        self, licensing: LicensingApi
    ) -> None:
        application_id = await _submit(licensing)

        response = await act(licensing, application_id, "approve", supervisor())

        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["details"] == {"current_state": "submitted", "allowed_actions": ["reject"]}
        assert "submitted" in error["message"]
        assert await licensing.outbox_size() == 1

    async def test_approving_again_is_a_conflict(self, licensing: LicensingApi) -> None:
        application_id = await _verified(licensing)
        first = await act(licensing, application_id, "approve", supervisor())

        again = await act(licensing, application_id, "approve", supervisor("supervisor-2"))

        assert first.status_code == 200
        assert again.status_code == 409
        assert again.json()["error"]["details"]["current_state"] == "awaiting_payment"
        assert [e.event_type for e in await licensing.outbox(application_id)].count(
            "ApplicationApproved"
        ) == 1

    async def test_a_role_the_workflow_does_not_allow_is_403(self, licensing: LicensingApi) -> None:
        application_id = await _verified(licensing)

        response = await act(licensing, application_id, "approve", officer())

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert response.json()["error"]["details"]["required_roles"] == ["supervisor"]
        assert await licensing.outbox_size() == 2

    async def test_an_action_needing_a_reason_without_one_is_422(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)

        response = await act(licensing, application_id, "reject", supervisor(), reason="   ")

        assert response.status_code == 422
        assert response.json()["error"]["details"] == {"field": "reason", "problem": "required"}
        assert await licensing.outbox_size() == 1

    async def test_rejecting_with_a_reason_publishes_it(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing)

        response = await act(
            licensing, application_id, "reject", supervisor(), reason="Lokasi tidak sesuai RTRW"
        )

        assert response.status_code == 200
        assert response.json()["allowed_actions"] == []
        rejected = json.loads((await licensing.outbox(application_id))[-1].value)
        assert (rejected["reason"], rejected["reason_code"]) == ("Lokasi tidak sesuai RTRW", "reject")

    async def test_a_missing_application_is_not_found(self, licensing: LicensingApi) -> None:
        response = await act(licensing, MISSING_ID, "verify", officer())

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert await licensing.outbox_size() == 0

    @pytest.mark.parametrize(
        "headers",
        [supervisor(agency="polres"), supervisor(site=OTHER_SITE)],
        ids=["other-agency", "other-site"],
    )
    async def test_another_scopes_application_answers_like_a_missing_one(
        self, licensing: LicensingApi, headers: dict[str, str]
    ) -> None:
        application_id = await _verified(licensing)

        existing = await act(licensing, application_id, "approve", headers)
        missing = await act(licensing, MISSING_ID, "approve", headers)

        assert existing.status_code == missing.status_code == 404
        assert existing.content == missing.content


class TestConcurrentApproval:
    async def test_two_supervisors_approving_at_once_succeed_once(self, licensing: LicensingApi) -> None:
        application_id = await _verified(licensing)

        responses = await _race(licensing, application_id)

        assert sorted(r.status_code for r in responses) == [200, 409]
        [loser] = [r for r in responses if r.status_code == 409]
        assert loser.json()["error"]["code"] in {"invalid_transition", "concurrent_update"}
        types = [e.event_type for e in await licensing.outbox(application_id)]
        assert types.count("ApplicationApproved") == 1

    async def test_races_on_many_applications_each_approve_exactly_once(
        self, licensing: LicensingApi
    ) -> None:
        ids = [await _verified(licensing, seed=seed) for seed in range(6)]

        races = await asyncio.gather(*(_race(licensing, application_id) for application_id in ids))

        assert [sorted(r.status_code for r in race) for race in races] == [[200, 409]] * len(ids)
        for application_id in ids:
            types = [e.event_type for e in await licensing.outbox(application_id)]
            assert types.count("ApplicationApproved") == 1


class TestPermitNumbering:
    async def test_many_concurrent_issues_get_unique_consecutive_numbers(
        self, licensing: LicensingApi
    ) -> None:
        ids = [await _submit(licensing, seed=seed) for seed in range(12)]
        ids += [
            await _submit(licensing, seed=seed, service_type="dpmptsp.izin-penelitian")
            for seed in range(12, 20)
        ]
        for application_id in ids[:12]:
            await carry_to_permit(licensing, application_id, stop_before_issue=True)
        for application_id in ids[12:]:
            await carry_to_permit(
                licensing, application_id, "dpmptsp.izin-penelitian", stop_before_issue=True
            )

        responses = await asyncio.gather(
            *(act(licensing, application_id, "issue", supervisor()) for application_id in ids)
        )

        assert [r.status_code for r in responses] == [200] * len(ids)
        numbers = [r.json()["permit_number"] for r in responses]
        assert len(set(numbers)) == len(ids)
        assert sorted(int(n.split("/")[0]) for n in numbers) == list(range(1, len(ids) + 1))
        assert {n.split("/", 2)[2] for n in numbers} == {"PBG/XI/2026", "IZINPENELITI/XI/2026"}

    async def test_numbering_restarts_in_a_new_year(self, licensing: LicensingApi) -> None:
        last_year = await _submit(licensing, seed=1)
        this_year = await _submit(licensing, seed=2)
        await carry_to_permit(licensing, last_year)
        await carry_to_permit(licensing, this_year, stop_before_issue=True)
        licensing.clock.at = datetime(2027, 1, 4, 1, 0, tzinfo=UTC)

        response = await act(licensing, this_year, "issue", supervisor())

        assert response.json()["permit_number"] == "0001/DPMPTSP/PBG/I/2027"
        issued = json.loads((await licensing.outbox(this_year))[-1].value)
        assert issued["within_sla"] is False


class TestSlaBreach:
    async def test_is_emitted_once_when_the_due_instant_passes(self, licensing: LicensingApi) -> None:
        late = await _submit(licensing, seed=1, service_type="dpmptsp.izin-penelitian")
        finished = await _submit(licensing, seed=2, service_type="dpmptsp.izin-penelitian")
        paused = await _submit(licensing, seed=3, service_type="dpmptsp.izin-penelitian")
        await carry_to_permit(licensing, finished, "dpmptsp.izin-penelitian")
        await act(licensing, paused, "return", officer(), reason="Lengkapi proposal")

        before = await _flag(licensing)
        licensing.clock.at = NOW + timedelta(days=10)  # izin penelitian: 3 working days
        first, second = await _flag(licensing), await _flag(licensing)

        assert (before, first, second) == (0, 1, 0)
        breaches = [e for e in await licensing.outbox(late) if e.event_type == "ApplicationSlaBreached"]
        assert len(breaches) == 1
        payload = json.loads(breaches[0].value)
        assert (payload["sla_value"], payload["sla_unit"]) == (3, "working_days")
        for other in (finished, paused):
            assert "ApplicationSlaBreached" not in [e.event_type for e in await licensing.outbox(other)]
        read = await licensing.client.get(f"/v1/applications/{late}", headers=officer())
        assert read.json()["sla_status"] == "breached"

    async def test_two_watchers_at_once_flag_each_application_once(self, licensing: LicensingApi) -> None:
        ids = [
            await _submit(licensing, seed=seed, service_type="dpmptsp.izin-penelitian") for seed in range(5)
        ]
        licensing.clock.at = NOW + timedelta(days=10)

        flagged = await asyncio.gather(_flag(licensing), _flag(licensing))

        assert sum(flagged) == len(ids)
        for application_id in ids:
            types = [e.event_type for e in await licensing.outbox(application_id)]
            assert types.count("ApplicationSlaBreached") == 1

    async def test_the_periodic_watch_flags_overdue_applications(self, licensing: LicensingApi) -> None:
        application_id = await _submit(licensing, service_type="dpmptsp.izin-penelitian")
        licensing.clock.at = NOW + timedelta(days=10)
        stop = asyncio.Event()

        watch = asyncio.create_task(licensing.app.state.licensing.watch_sla(stop, 0.05))
        await asyncio.sleep(0.3)
        stop.set()
        await watch

        types = [e.event_type for e in await licensing.outbox(application_id)]
        assert types.count("ApplicationSlaBreached") == 1


class TestSupervisionList:
    async def test_lists_applications_at_risk_or_breached_most_urgent_first(
        self, licensing: LicensingApi
    ) -> None:
        research = await _submit(licensing, seed=1, service_type="dpmptsp.izin-penelitian")  # 3 days
        business = await _submit(licensing, seed=2, service_type="dpmptsp.izin-usaha-toko-swalayan")  # 10
        await _submit(licensing, seed=3)  # PBG, 28 working days: on track
        licensing.clock.at = datetime(2026, 11, 16, 3, 0, tzinfo=UTC)  # Monday, day 9 of 10

        response = await licensing.client.get("/v1/supervision/sla", headers=supervisor())

        assert response.status_code == 200
        body = response.json()
        assert body["total"] == 2
        assert [(a["id"], a["sla_status"]) for a in body["items"]] == [
            (research, "breached"),
            (business, "at_risk"),
        ]

    @pytest.mark.parametrize(
        ("headers", "status", "total"),
        [
            (officer(), 403, None),
            (bearer(roles=[Role.OPERATOR], agency=None), 200, 1),
            (supervisor(agency="polres"), 200, 0),
            (bearer(roles=[Role.CITIZEN], agency=None, site=None), 403, None),
        ],
        ids=["officer", "operator", "other-agency-supervisor", "citizen"],
    )
    async def test_is_for_supervisors_and_operators_of_the_scope(
        self, licensing: LicensingApi, headers: dict[str, str], status: int, total: int | None
    ) -> None:
        await _submit(licensing, seed=1, service_type="dpmptsp.izin-penelitian")
        licensing.clock.at = NOW + timedelta(days=30)

        response = await licensing.client.get("/v1/supervision/sla", headers=headers)

        assert response.status_code == status
        assert response.json().get("total") == total
