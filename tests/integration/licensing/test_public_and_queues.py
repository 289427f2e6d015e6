"""Citizens follow an application by tracking code; anyone checks a permit number; officers page
through their work queue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mpp.kit.auth import Role
from tests.integration.licensing.harness import (
    AGENCY,
    OTHER_SITE,
    SITE,
    LicensingApi,
    act,
    bearer,
    carry_to_permit,
    officer,
    submission,
)

pytestmark = pytest.mark.integration


async def submit(api: LicensingApi, seed: int, name: str = "Siti Rahmawati") -> dict[str, object]:
    application_id = await api.submit(submission(seed=seed, name=name), officer())
    response = await api.client.get(f"/v1/applications/{application_id}", headers=officer())
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestTrackApplication:
    async def test_citizen_sees_status_without_logging_in_and_without_personal_or_officer_data(
        self, licensing: LicensingApi
    ) -> None:
        created = await submit(licensing, 1, name="Siti Rahmawati")
        await carry_to_permit(licensing, str(created["id"]))

        response = await licensing.client.get(f"/v1/track/{str(created['tracking_code']).lower()}")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "permit_issued"
        assert body["status_label"] == "PBG terbit"
        assert body["permit_issued"] is True
        text = response.text
        assert "Siti" not in text and "officer-1" not in text and "supervisor-1" not in text
        assert str(created["id"]) not in text

    async def test_shows_the_expected_completion_date_in_working_days(self, licensing: LicensingApi) -> None:
        created = await submit(licensing, 3)

        body = (await licensing.client.get(f"/v1/track/{created['tracking_code']}")).json()

        # PBG: 28 working days after Tuesday 3 November 2026.
        assert body["status_label"] == "Permohonan diterima, verifikasi administrasi"
        assert body["expected_completion_date"] == "2026-12-11"
        assert body["paused"] is False

    async def test_while_returned_to_the_citizen_there_is_no_expected_date(
        self, licensing: LicensingApi
    ) -> None:
        created = await submit(licensing, 4)
        returned = await act(
            licensing, str(created["id"]), "return", officer(), reason="Gambar teknis belum ditandatangani"
        )

        body = (await licensing.client.get(f"/v1/track/{created['tracking_code']}")).json()

        assert returned.status_code == 200
        assert body["status"] == "returned"
        assert body["status_label"] == "Dikembalikan untuk perbaikan dokumen"
        assert body["expected_completion_date"] is None
        assert body["paused"] is True

    async def test_unknown_code_is_404_in_bahasa_indonesia(self, licensing: LicensingApi) -> None:
        response = await licensing.client.get("/v1/track/ZZZZZZZZZZ")

        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Kode pelacakan tidak ditemukan"


class TestVerifyPermit:
    async def test_a_valid_permit_names_its_holder_masked(self, licensing: LicensingApi) -> None:
        created = await submit(licensing, 2, name="Budi Santoso")
        issued = await carry_to_permit(licensing, str(created["id"]))
        number = issued.json()["permit_number"]

        response = await licensing.client.get("/v1/permits/verification", params={"number": number})

        assert response.status_code == 200
        body = response.json()
        assert (body["valid"], body["permit_number"], body["holder"]) == (True, number, "B*** S******")
        assert "Budi" not in response.text

    async def test_an_unknown_number_is_reported_invalid(self, licensing: LicensingApi) -> None:
        response = await licensing.client.get(
            "/v1/permits/verification", params={"number": "9999/X/Y/I/2026"}
        )

        assert response.status_code == 200
        assert response.json()["valid"] is False


class TestWorkQueue:
    async def test_officer_pages_through_own_agency_and_site_oldest_first(
        self, licensing: LicensingApi
    ) -> None:
        ids = []
        for seed in range(10, 15):
            licensing.clock.at += timedelta(minutes=1)
            ids.append(str((await submit(licensing, seed))["id"]))

        first = await licensing.client.get("/v1/applications", params={"size": 3}, headers=officer())
        second = await licensing.client.get(
            "/v1/applications", params={"size": 3, "page": 2}, headers=officer()
        )

        assert first.status_code == second.status_code == 200
        assert first.json()["total"] == 5
        assert [a["id"] for a in first.json()["items"] + second.json()["items"]] == ids

    async def test_filter_by_status(self, licensing: LicensingApi) -> None:
        created = [await submit(licensing, seed) for seed in range(20, 23)]
        await act(licensing, str(created[0]["id"]), "verify", officer())

        response = await licensing.client.get(
            "/v1/applications", params={"status": "submitted"}, headers=officer()
        )

        assert {a["id"] for a in response.json()["items"]} == {str(c["id"]) for c in created[1:]}

    @pytest.mark.parametrize(
        ("headers", "params", "status"),
        [
            (bearer(roles=[Role.OFFICER], agency="polres"), {}, 200),
            (bearer(roles=[Role.OFFICER]), {"agency": "polres"}, 403),
            (bearer(roles=[Role.OFFICER]), {"site": OTHER_SITE}, 403),
            (bearer(roles=[Role.OPERATOR], agency=None, site=OTHER_SITE), {}, 200),
            (bearer(roles=[Role.OPERATOR], agency=None), {"site": OTHER_SITE}, 403),
            (bearer(roles=[Role.CITIZEN], agency=None, site=None), {}, 403),
            ({}, {}, 401),
        ],
        ids=[
            "other-agency",
            "asks-other-agency",
            "asks-other-site",
            "operator-elsewhere",
            "operator-asks-other-site",
            "citizen",
            "anonymous",
        ],
    )
    async def test_scope_is_enforced(
        self, licensing: LicensingApi, headers: dict[str, str], params: dict[str, str], status: int
    ) -> None:
        await submit(licensing, 30)

        response = await licensing.client.get("/v1/applications", params=params, headers=headers)

        assert response.status_code == status
        if status == 200:
            assert response.json()["total"] == 0, "another agency or site sees none of these applications"

    async def test_operator_and_ministry_see_the_site(self, licensing: LicensingApi) -> None:
        await submit(licensing, 40)
        operator = bearer(roles=[Role.OPERATOR], agency=None, site=SITE)
        ministry = bearer(roles=[Role.MINISTRY], agency=None, site=None)

        assert (await licensing.client.get("/v1/applications", headers=operator)).json()["total"] == 1
        by_agency = await licensing.client.get(
            "/v1/applications", params={"agency": AGENCY}, headers=ministry
        )
        assert by_agency.json()["total"] == 1
