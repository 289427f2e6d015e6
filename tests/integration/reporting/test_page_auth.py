"""Sign-in for the dashboard pages: the token in an HttpOnly cookie, redirects that stay on this service."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends

from mpp.kit.auth import Principal, Role, issue_token
from mpp.reporting.api.page_auth import COOKIE, LOGIN_PATH, require_page_roles
from tests.integration.reporting.harness import SECRET, ReportingApi, ministry

pytestmark = pytest.mark.integration

PROBE = "/dasbor/_uji"


@pytest.fixture
def pages(reporting: ReportingApi) -> ReportingApi:
    @reporting.app.get(PROBE)
    async def probe(
        principal: Annotated[Principal, Depends(require_page_roles(Role.MINISTRY))],
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    return reporting


def _token(*roles: Role, site: str | None = None) -> str:
    return issue_token(SECRET, subject="page-user", roles=list(roles), site=site)


async def test_a_page_without_credentials_redirects_to_sign_in_and_back(pages: ReportingApi) -> None:
    response = await pages.client.get(f"{PROBE}?period=month")
    assert response.status_code == 303
    assert response.headers["location"] == f"{LOGIN_PATH}?next=/dasbor/_uji%3Fperiod%3Dmonth"
    form = await pages.client.get(response.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/dasbor/_uji?period=month"' in form.text


async def test_signing_in_sets_an_httponly_strict_cookie_that_pages_accept(pages: ReportingApi) -> None:
    response = await pages.client.post(
        LOGIN_PATH, data={"token": _token(Role.MINISTRY), "next": f"{PROBE}?x=1"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{PROBE}?x=1"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    pages.client.cookies.set(COOKIE, _token(Role.MINISTRY))
    page = await pages.client.get(PROBE)
    assert page.status_code == 200
    assert page.json() == {"subject": "page-user"}


async def test_the_header_still_works_and_roles_are_enforced(pages: ReportingApi) -> None:
    assert (await pages.client.get(PROBE, headers=ministry())).status_code == 200
    pages.client.cookies.set(COOKIE, _token(Role.OPERATOR, site="mpp-kota-sukamaju"))
    refused = await pages.client.get(PROBE)
    assert refused.status_code == 403


@pytest.mark.parametrize("target", ["//elsewhere.example/x", "https://elsewhere.example/", "dasbor", "/\\x"])
async def test_sign_in_never_redirects_off_the_service(pages: ReportingApi, target: str) -> None:
    response = await pages.client.post(LOGIN_PATH, data={"token": _token(Role.MINISTRY), "next": target})
    assert response.status_code == 303
    assert response.headers["location"] == "/dasbor"


async def test_a_bad_or_forged_token_is_refused_with_a_message(pages: ReportingApi) -> None:
    forged = issue_token("another-secret-0123456789abcdef-0123456789", subject="x", roles=[Role.MINISTRY])
    for token in ("not-a-token", forged):
        response = await pages.client.post(LOGIN_PATH, data={"token": token, "next": PROBE})
        assert response.status_code == 401
        assert "Token tidak valid" in response.text
        assert "set-cookie" not in response.headers
    pages.client.cookies.set(COOKIE, forged)
    stale = await pages.client.get(PROBE)
    assert stale.status_code == 303


async def test_an_empty_form_says_what_is_missing(pages: ReportingApi) -> None:
    response = await pages.client.post(LOGIN_PATH, data={"next": PROBE})
    assert response.status_code == 422
    assert "Token akses wajib diisi" in response.text


async def test_signing_out_clears_the_cookie(pages: ReportingApi) -> None:
    response = await pages.client.post("/dasbor/keluar")
    assert response.status_code == 303
    assert response.headers["location"] == LOGIN_PATH
    assert f'{COOKIE}=""' in response.headers["set-cookie"]
