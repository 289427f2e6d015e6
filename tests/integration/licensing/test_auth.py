"""Who may call which licensing endpoint: 401 without valid credentials, 403 out of scope, and 404 for
another agency's application exactly as for an id that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mpp.kit.auth import Role
from tests.integration.licensing.harness import (
    OTHER_SITE,
    SECRET,
    SITE,
    LicensingApi,
    bearer,
    officer,
    submission,
)
from tests.support.tokens import Claims, bad_credentials

pytestmark = pytest.mark.integration

MISSING_ID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: Callable[[], dict[str, Any]] | None = None

    def url(self, application_id: str) -> str:
        return self.path.format(id=application_id)


SUBMIT = Endpoint("POST", "/v1/applications", body=lambda: submission(seed=99))
READ = Endpoint("GET", "/v1/applications/{id}")
VERIFY = Endpoint("POST", "/v1/applications/{id}/actions/verify")
ENDPOINTS = {"submit": SUBMIT, "read": READ, "verify": VERIFY}


BAD_CREDENTIALS = bad_credentials(
    Claims(SECRET, subject="officer-1", roles=[Role.OFFICER], agency="dpmptsp", site=SITE)
)

OUT_OF_SCOPE: dict[str, tuple[Endpoint, Callable[[], dict[str, str]]]] = {
    "officer of another agency submits": (SUBMIT, lambda: officer(agency="disdukcapil")),
    "officer of another site submits": (SUBMIT, lambda: officer(site=OTHER_SITE)),
    "operator submits": (SUBMIT, lambda: bearer(roles=[Role.OPERATOR], agency=None)),
    "ministry submits": (SUBMIT, lambda: bearer(roles=[Role.MINISTRY], agency=None, site=None)),
    "citizen submits at the counter": (SUBMIT, lambda: bearer(roles=[Role.CITIZEN], agency=None, site=None)),
    "token without a known role submits": (SUBMIT, lambda: bearer(roles=[])),
    "citizen reads": (READ, lambda: bearer(roles=[Role.CITIZEN], agency=None, site=None)),
    "token without a known role reads": (READ, lambda: bearer(roles=[])),
    "citizen verifies": (VERIFY, lambda: bearer(roles=[Role.CITIZEN], agency=None, site=None)),
    "operator verifies": (VERIFY, lambda: bearer(roles=[Role.OPERATOR], agency=None)),
    "ministry verifies": (VERIFY, lambda: bearer(roles=[Role.MINISTRY], agency=None, site=None)),
    "supervisor verifies (the workflow gives it to officers)": (
        VERIFY,
        lambda: bearer(roles=[Role.SUPERVISOR], subject="supervisor-1"),
    ),
}

OUTSIDERS: dict[str, Callable[[], dict[str, str]]] = {
    "officer of another agency": lambda: officer("outsider-1", agency="disdukcapil"),
    "supervisor of another agency": lambda: bearer(
        roles=[Role.SUPERVISOR], agency="polres", subject="outsider-2"
    ),
    "officer of the agency at another site": lambda: officer("outsider-3", site=OTHER_SITE),
    "officer without a site": lambda: bearer(roles=[Role.OFFICER], site=None, subject="outsider-4"),
}

READERS: dict[str, Callable[[], dict[str, str]]] = {
    "officer": lambda: officer("officer-9"),
    "supervisor": lambda: bearer(roles=[Role.SUPERVISOR], subject="supervisor-1"),
    "operator of the site": lambda: bearer(roles=[Role.OPERATOR], agency=None, subject="operator-1"),
    "ministry": lambda: bearer(roles=[Role.MINISTRY], agency=None, site=None, subject="ministry-1"),
}


async def _submitted(api: LicensingApi) -> str:
    return await api.submit(submission(), officer())


async def _call(api: LicensingApi, endpoint: Endpoint, application_id: str, headers: dict[str, str]) -> Any:
    body = endpoint.body() if endpoint.body is not None else None
    return await api.client.request(endpoint.method, endpoint.url(application_id), json=body, headers=headers)


async def _status(api: LicensingApi, application_id: str) -> str:
    response = await api.client.get(f"/v1/applications/{application_id}", headers=officer())
    status: str = response.json()["status"]
    return status


class TestAuthentication:
    @pytest.mark.parametrize("endpoint", ENDPOINTS.values(), ids=ENDPOINTS.keys())
    @pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
    async def test_request_without_valid_credentials_is_401_and_changes_nothing(
        self, licensing: LicensingApi, endpoint: Endpoint, credentials: Callable[[], dict[str, str]]
    ) -> None:
        application_id = await _submitted(licensing)

        response = await _call(licensing, endpoint, application_id, credentials())

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["code"] == "unauthenticated"
        assert error["message"]
        assert set(response.json()) == {"error"}
        assert await licensing.application_count() == 1
        assert await licensing.outbox_size() == 1
        assert await _status(licensing, application_id) == "submitted"


class TestAuthorization:
    @pytest.mark.parametrize(("endpoint", "credentials"), OUT_OF_SCOPE.values(), ids=OUT_OF_SCOPE.keys())
    async def test_caller_out_of_scope_is_403_and_changes_nothing(
        self, licensing: LicensingApi, endpoint: Endpoint, credentials: Callable[[], dict[str, str]]
    ) -> None:
        application_id = await _submitted(licensing)

        response = await _call(licensing, endpoint, application_id, credentials())

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert "WWW-Authenticate" not in response.headers
        assert await licensing.application_count() == 1
        assert await licensing.outbox_size() == 1
        assert await _status(licensing, application_id) == "submitted"

    @pytest.mark.parametrize("credentials", READERS.values(), ids=READERS.keys())
    async def test_caller_in_scope_reads_the_application(
        self, licensing: LicensingApi, credentials: Callable[[], dict[str, str]]
    ) -> None:
        application_id = await _submitted(licensing)

        response = await licensing.client.get(f"/v1/applications/{application_id}", headers=credentials())

        assert response.status_code == 200
        assert response.json()["id"] == application_id

    async def test_supervisor_of_the_agency_rejects(self, licensing: LicensingApi) -> None:
        application_id = await _submitted(licensing)

        response = await licensing.client.post(
            f"/v1/applications/{application_id}/actions/reject",
            json={"reason": "Tidak sesuai rencana tata ruang"},
            headers=bearer(roles=[Role.SUPERVISOR]),
        )

        assert response.status_code == 200
        assert response.json()["state"] == "rejected"

    async def test_citizen_submits_online(self, licensing: LicensingApi) -> None:
        citizen = bearer(roles=[Role.CITIZEN], agency=None, site=None, subject="citizen-1")

        response = await licensing.client.post(
            "/v1/applications", json=submission(channel="online"), headers=citizen
        )

        assert response.status_code == 201
        assert response.json()["channel"] == "online"
        request = await licensing.verification_request(response.json()["id"])
        assert request["officer_ref"] is None


class TestAnotherAgencysApplication:
    @pytest.mark.parametrize("endpoint", [READ, VERIFY], ids=["read", "verify"])
    @pytest.mark.parametrize("credentials", OUTSIDERS.values(), ids=OUTSIDERS.keys())
    async def test_answers_exactly_like_a_missing_id(
        self, licensing: LicensingApi, endpoint: Endpoint, credentials: Callable[[], dict[str, str]]
    ) -> None:
        application_id = await _submitted(licensing)
        headers = credentials()

        existing = await _call(licensing, endpoint, application_id, headers)
        missing = await _call(licensing, endpoint, MISSING_ID, headers)

        assert existing.status_code == missing.status_code == 404
        assert existing.content == missing.content
        assert existing.json()["error"]["code"] == "not_found"
        assert application_id not in existing.text
        assert existing.headers["Content-Type"] == missing.headers["Content-Type"]
        assert await _status(licensing, application_id) == "submitted"
        assert await licensing.outbox_size() == 1
