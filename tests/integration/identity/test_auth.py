"""Who may call which identity endpoint: 401 without valid credentials, 403 for other roles and agencies,
and a record of another site answered exactly like one that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mpp.kit.auth import Role
from tests.integration.identity.harness import (
    OTHER_SITE,
    SECRET,
    SITE,
    IdentityApi,
    bearer,
    citizen,
    officer,
    person,
    supervisor,
)
from tests.support.tokens import Claims, bad_credentials

pytestmark = pytest.mark.integration

MISSING_REF = "c_00000000000000000000000000000000"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: Callable[[], dict[str, Any]] | None = None

    async def call(self, client: httpx.AsyncClient, ref: str, headers: dict[str, str]) -> httpx.Response:
        body = self.body() if self.body is not None else None
        return await client.request(self.method, self.path.format(ref=ref), json=body, headers=headers)


REGISTER = Endpoint("POST", "/v1/citizens", body=lambda: person(501))
READ = Endpoint("GET", "/v1/citizens/{ref}")
LIST = Endpoint("GET", "/v1/citizens")
STATUS = Endpoint("PUT", "/v1/citizens/{ref}/status", body=lambda: {"status": "moved_out"})
ACCESS_LOG = Endpoint("GET", "/v1/me/access-log")
ENDPOINTS = {"register": REGISTER, "read": READ, "list": LIST, "status": STATUS, "access-log": ACCESS_LOG}


BAD_CREDENTIALS = bad_credentials(
    Claims(SECRET, subject="officer-1", roles=[Role.OFFICER], agency="disdukcapil", site=SITE)
)

CALLERS: dict[str, Callable[[], dict[str, str]]] = {
    "disdukcapil officer": officer,
    "disdukcapil supervisor": supervisor,
    "site operator": lambda: bearer(roles=[Role.OPERATOR], agency="dpmptsp", subject="operator-1"),
    "officer of another agency": lambda: officer(agency="dpmptsp"),
    "supervisor of another agency": lambda: supervisor(agency="polres"),
    "officer without a site": lambda: bearer(roles=[Role.OFFICER], site=None),
    "ministry": lambda: bearer(roles=[Role.MINISTRY], agency=None, site=None, subject="ministry-1"),
    "citizen": lambda: citizen("c_11111111111111111111111111111111"),
}

# (caller, endpoint) -> status; anything not listed is 403.
ALLOWED: dict[tuple[str, str], int] = {
    ("disdukcapil officer", "register"): 201,
    ("disdukcapil officer", "read"): 200,
    ("disdukcapil supervisor", "register"): 201,
    ("disdukcapil supervisor", "read"): 200,
    ("disdukcapil supervisor", "list"): 200,
    ("disdukcapil supervisor", "status"): 200,
    ("site operator", "list"): 200,
    ("citizen", "access-log"): 200,
}
MATRIX = [
    (caller, endpoint, ALLOWED.get((caller, endpoint), 403)) for caller in CALLERS for endpoint in ENDPOINTS
]


@pytest.fixture
async def ref(identity: IdentityApi) -> str:
    created = await identity.register(person(500))
    return str(created["citizen_ref"])


class TestAuthentication:
    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    @pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
    async def test_a_request_without_valid_credentials_is_401_and_changes_nothing(
        self, identity: IdentityApi, ref: str, endpoint: str, credentials: str
    ) -> None:
        response = await ENDPOINTS[endpoint].call(identity.client, ref, BAD_CREDENTIALS[credentials]())

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
        assert [r["status"] for r in await identity.citizen_rows()] == ["active"]


class TestAuthorizationMatrix:
    @pytest.mark.parametrize(("caller", "endpoint", "expected"), MATRIX)
    async def test_each_role_and_agency_gets_the_expected_status(
        self, identity: IdentityApi, ref: str, caller: str, endpoint: str, expected: int
    ) -> None:
        response = await ENDPOINTS[endpoint].call(identity.client, ref, CALLERS[caller]())

        assert response.status_code == expected, response.text
        if expected == 403:
            assert response.json()["error"]["code"] == "forbidden"
            assert len(await identity.citizen_rows()) == 1


class TestSiteScope:
    async def test_a_record_of_another_site_answers_exactly_like_a_missing_one(
        self, identity: IdentityApi, ref: str
    ) -> None:
        elsewhere = officer("officer-9", site=OTHER_SITE)

        foreign = await identity.client.get(f"/v1/citizens/{ref}", headers=elsewhere)
        missing = await identity.client.get(f"/v1/citizens/{MISSING_REF}", headers=elsewhere)

        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()

    async def test_a_status_change_on_a_record_of_another_site_is_404(
        self, identity: IdentityApi, ref: str
    ) -> None:
        response = await identity.client.put(
            f"/v1/citizens/{ref}/status", json={"status": "deceased"}, headers=supervisor(site=OTHER_SITE)
        )

        assert response.status_code == 404
        assert [r["status"] for r in await identity.citizen_rows()] == ["active"]

    async def test_registering_for_another_site_is_403(self, identity: IdentityApi) -> None:
        response = await identity.client.post(
            "/v1/citizens", json=person(502) | {"site": OTHER_SITE}, headers=officer()
        )

        assert response.status_code == 403

    async def test_an_officer_registers_at_their_own_site_by_default(self, identity: IdentityApi) -> None:
        response = await identity.client.post(
            "/v1/citizens", json=person(503), headers=officer(site=OTHER_SITE)
        )

        assert response.status_code == 201
        assert response.json()["site"] == OTHER_SITE

    async def test_the_list_holds_only_the_callers_site(self, identity: IdentityApi, ref: str) -> None:
        await identity.client.post("/v1/citizens", json=person(504), headers=officer(site=OTHER_SITE))

        here = await identity.client.get("/v1/citizens", headers=supervisor())
        there = await identity.client.get("/v1/citizens", headers=supervisor(site=OTHER_SITE))

        assert [c["citizen_ref"] for c in here.json()["items"]] == [ref]
        assert there.json()["total"] == 1
        assert there.json()["items"][0]["citizen_ref"] != ref

    async def test_a_missing_record_is_404_in_indonesian(self, identity: IdentityApi) -> None:
        response = await identity.client.get(f"/v1/citizens/{MISSING_REF}", headers=officer())

        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Data penduduk tidak ditemukan"
