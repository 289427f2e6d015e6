"""Who may read which reporting figures: 401 without valid credentials, 403 outside the caller's scope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from mpp.kit.auth import Role
from tests.integration.reporting.harness import (
    OTHER_SITE,
    SECRET,
    SITE,
    ReportingApi,
    bearer,
    officer,
    operator,
    submitted,
)
from tests.support.tokens import Claims, bad_credentials

pytestmark = pytest.mark.integration

ENDPOINTS = {"daily": "/v1/figures/daily", "totals": "/v1/figures/totals"}


BAD_CREDENTIALS = bad_credentials(Claims(SECRET, subject="ministry-1", roles=[Role.MINISTRY]))

OUT_OF_SCOPE: dict[str, tuple[Callable[[], dict[str, str]], dict[str, str]]] = {
    "operator of another site asks for a site": (lambda: operator(OTHER_SITE), {"site": SITE}),
    "officer asks for another agency": (lambda: officer("polres"), {"agency": "dpmptsp"}),
    "officer asks for another site": (lambda: officer("dpmptsp"), {"site": OTHER_SITE}),
    "supervisor asks for another agency": (
        lambda: bearer(roles=[Role.SUPERVISOR], agency="polres", site=SITE),
        {"agency": "dpmptsp"},
    ),
    "citizen": (lambda: bearer(roles=[Role.CITIZEN]), {}),
    "token without a known role": (lambda: bearer(roles=[], agency="dpmptsp", site=SITE), {}),
    "operator without a site": (lambda: bearer(roles=[Role.OPERATOR]), {}),
    "officer without an agency": (lambda: bearer(roles=[Role.OFFICER], site=SITE), {}),
    # Without a site, an agency claim is an agency-wide user: their agency at every site, no other.
    "agency-wide officer asks for another agency": (
        lambda: bearer(roles=[Role.OFFICER], agency="polres"),
        {"agency": "dpmptsp"},
    ),
}


@pytest.fixture
async def reporting_with_figures(reporting: ReportingApi) -> AsyncIterator[ReportingApi]:
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    await reporting.project([submitted(at), submitted(at, site=OTHER_SITE, service_type="polres.skck")])
    yield reporting


class TestFiguresAuthentication:
    @pytest.mark.parametrize("path", ENDPOINTS.values(), ids=ENDPOINTS.keys())
    @pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
    async def test_request_without_valid_credentials_is_401(
        self, reporting_with_figures: ReportingApi, path: str, credentials: Callable[[], dict[str, str]]
    ) -> None:
        response = await reporting_with_figures.client.get(path, headers=credentials())

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert set(response.json()) == {"error"}
        error = response.json()["error"]
        assert error["code"] == "unauthenticated"
        assert error["message"]


class TestFiguresAuthorization:
    @pytest.mark.parametrize("path", ENDPOINTS.values(), ids=ENDPOINTS.keys())
    @pytest.mark.parametrize(("credentials", "params"), OUT_OF_SCOPE.values(), ids=OUT_OF_SCOPE.keys())
    async def test_caller_out_of_scope_is_403(
        self,
        reporting_with_figures: ReportingApi,
        path: str,
        credentials: Callable[[], dict[str, str]],
        params: dict[str, str],
    ) -> None:
        response = await reporting_with_figures.client.get(path, params=params, headers=credentials())

        assert response.status_code == 403
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"] == "forbidden"
        assert "WWW-Authenticate" not in response.headers

    @pytest.mark.parametrize("path", ENDPOINTS.values(), ids=ENDPOINTS.keys())
    async def test_operator_asking_for_their_own_site_is_answered(
        self, reporting_with_figures: ReportingApi, path: str
    ) -> None:
        response = await reporting_with_figures.client.get(
            path, params={"site": SITE}, headers=operator(SITE)
        )

        assert response.status_code == 200
        assert OTHER_SITE not in response.text
