"""The authorization matrix: which answer every caller gets from every route of a service.

A service's table lists its routes, each with the callers that get past authorization and the status
they receive; every other caller with a valid token gets 403, and every bad credential gets 401. Public
routes answer everyone, with or without a token. :func:`uncovered` names the routes of the application
that the table lacks, so a new endpoint cannot ship without a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from mpp.kit.auth import Role
from tests.support.tokens import Claims, Headers, bad_credentials

__all__ = [
    "FOREIGN",
    "PROBES",
    "Call",
    "Caller",
    "Route",
    "Scope",
    "mismatch_of",
    "mismatches",
    "roles_without_a_caller",
    "routes_of",
    "uncovered",
]


class Caller(StrEnum):
    """The columns of the matrix: every role in its own scope, and staff of a foreign agency or site."""

    CITIZEN = "citizen"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    MINISTRY = "ministry"
    KIOSK = "kiosk of the site"
    NO_ROLE = "token without a known role"
    OFFICER_OTHER_AGENCY = "officer of another agency"
    SUPERVISOR_OTHER_AGENCY = "supervisor of another agency"
    OFFICER_OTHER_SITE = "officer of the agency at another site"
    SUPERVISOR_OTHER_SITE = "supervisor of the agency at another site"
    OPERATOR_OTHER_SITE = "operator of another site"


FOREIGN: frozenset[Caller] = frozenset(
    {
        Caller.OFFICER_OTHER_AGENCY,
        Caller.SUPERVISOR_OTHER_AGENCY,
        Caller.OFFICER_OTHER_SITE,
        Caller.SUPERVISOR_OTHER_SITE,
        Caller.OPERATOR_OTHER_SITE,
    }
)


@dataclass(frozen=True)
class Scope:
    """The agency and site a service's test data belongs to, and a foreign agency and site."""

    secret: str
    agency: str
    site: str
    other_agency: str
    other_site: str

    def claims(self, caller: Caller) -> Claims:
        a, s, oa, osite = self.agency, self.site, self.other_agency, self.other_site
        spec: dict[Caller, tuple[list[Role], str | None, str | None]] = {
            Caller.CITIZEN: ([Role.CITIZEN], None, None),
            Caller.OFFICER: ([Role.OFFICER], a, s),
            Caller.SUPERVISOR: ([Role.SUPERVISOR], a, s),
            Caller.OPERATOR: ([Role.OPERATOR], None, s),
            Caller.MINISTRY: ([Role.MINISTRY], None, None),
            Caller.KIOSK: ([Role.KIOSK], None, s),
            Caller.NO_ROLE: ([], a, s),
            Caller.OFFICER_OTHER_AGENCY: ([Role.OFFICER], oa, s),
            Caller.SUPERVISOR_OTHER_AGENCY: ([Role.SUPERVISOR], oa, s),
            Caller.OFFICER_OTHER_SITE: ([Role.OFFICER], a, osite),
            Caller.SUPERVISOR_OTHER_SITE: ([Role.SUPERVISOR], a, osite),
            Caller.OPERATOR_OTHER_SITE: ([Role.OPERATOR], None, osite),
        }
        roles, agency, site = spec[caller]
        subject = caller.name.lower().replace("_", "-") + "-1"
        return Claims(self.secret, subject=subject, roles=roles, agency=agency, site=site)


@dataclass(frozen=True)
class Call:
    """What one request sends: path parameters, query, JSON body and headers besides the credential."""

    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class HasClient(Protocol):
    @property
    def client(self) -> httpx.AsyncClient: ...


ApiT = TypeVar("ApiT", bound=HasClient)


async def _nothing(api: Any) -> Call:
    return Call()


@dataclass(frozen=True)
class Route(Generic[ApiT]):
    """One row of the matrix. ``allow``: the callers that get past authorization and their status (a
    record out of the caller's scope answers 404, like a missing one); everyone else with a valid
    token: 403. ``public``: the status every caller gets, with any token or none. ``prepare`` makes the
    request anew for each caller (so that each changes a record of its own)."""

    method: str
    path: str
    allow: Mapping[Caller, int] = field(default_factory=dict)
    public: int | None = None
    prepare: Callable[[ApiT], Awaitable[Call]] = _nothing
    variant: str = ""
    page: str | None = None
    """For an HTML page behind a sign-in form: the form's path. Without any credential the page redirects
    there (303) instead of answering 401; its refusals (403) are HTML pages, and what it shows is HTML."""

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.variant})" if self.variant else "")

    def expected(self, caller: Caller) -> int:
        if self.public is not None:
            return self.public
        return self.allow.get(caller, 403)

    def bad_credential_claims(self, scope: Scope) -> Claims:
        """Bad tokens carry the claims of a caller the route would answer, so only the token is wrong."""
        allowed = [c for c, status in self.allow.items() if status < 400] or [Caller.OFFICER]
        return scope.claims(allowed[0])


def public_routes(*paths: str, status: int = 200) -> list[Route[Any]]:
    return [Route("GET", path, public=status) for path in paths]


# Probes and API documentation, served by every service without a token. The integration harnesses run
# without a broker, so readiness answers 503 (not ready) there: what matters here is that it answers.
PROBES: list[Route[Any]] = [
    *public_routes("/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"),
    *public_routes("/readyz", status=503),
]


async def _send(client: httpx.AsyncClient, route: Route[Any], call: Call, headers: Headers) -> httpx.Response:
    url = route.path.format(**call.path)
    return await client.request(
        route.method, url, params=dict(call.query), json=call.body, headers={**call.headers, **headers}
    )


# What a page's link may download instead of showing HTML (the monthly report's CSV and XLSX).
_DOWNLOADS = ("text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _page_problem(response: httpx.Response, expected: int, sign_in: str) -> str | None:
    if response.status_code != expected:
        return f"expected {expected}, got {response.status_code}: {response.text[:300]}"
    if expected == 303:
        location = response.headers.get("location", "")
        on_service = location.startswith("/") and not location.startswith("//")
        return None if on_service else f"303 off the service: {location}"
    content_type = response.headers.get("content-type", "")
    shown = content_type.startswith("text/html") or (expected == 200 and content_type.startswith(_DOWNLOADS))
    if expected in (200, 403) and not shown:
        return f"{expected} page that is neither HTML nor a download: {response.text[:300]}"
    if expected == 403 and '<html lang="id">' not in response.text:
        return f"403 page without an Indonesian message: {response.text[:300]}"
    return None


def _problem(response: httpx.Response, expected: int, page: str | None = None) -> str | None:
    if page is not None and expected != 401:
        return _page_problem(response, expected, page)
    if response.status_code != expected:
        return f"expected {expected}, got {response.status_code}: {response.text[:300]}"
    if expected == 401:
        if response.headers.get("WWW-Authenticate") != "Bearer":
            return "401 without 'WWW-Authenticate: Bearer'"
        if response.json().get("error", {}).get("code") != "unauthenticated":
            return f"401 with an unexpected body: {response.text[:300]}"
    if expected == 403 and response.json().get("error", {}).get("code") != "forbidden":
        return f"403 with an unexpected body: {response.text[:300]}"
    return None


async def mismatches(api: ApiT, route: Route[ApiT], scope: Scope) -> list[str]:
    """Every caller and every bad credential against ``route``: the answers that differ from the table."""
    found: list[str] = []
    for caller in Caller:
        call = await route.prepare(api)
        response = await _send(api.client, route, call, scope.claims(caller).bearer())
        problem = _problem(response, route.expected(caller), route.page)
        if problem is not None:
            found.append(f"{route} as {caller}: {problem}")
    for kind, headers in bad_credentials(route.bad_credential_claims(scope)).items():
        call = await route.prepare(api)
        expected = route.public if route.public is not None else 401
        response = await _send(api.client, route, call, headers())
        if route.page is not None and not headers():
            # No credential at all: a page sends the browser to its sign-in form and back.
            problem = _page_problem(response, 303, route.page)
            if problem is None and not response.headers["location"].startswith(route.page + "?next="):
                problem = f"redirected elsewhere than the sign-in form: {response.headers['location']}"
        else:
            problem = _problem(response, expected, route.page)
        if problem is not None:
            found.append(f"{route} with a bad credential ({kind}): {problem}")
    return found


async def mismatch_of(api: ApiT, route: Route[ApiT], claims: Claims, expected: int, who: str) -> str | None:
    """The answer to one caller outside the matrix's columns (e.g. an agency-wide user), if unexpected."""
    call = await route.prepare(api)
    problem = _problem(await _send(api.client, route, call, claims.bearer()), expected, route.page)
    return None if problem is None else f"{route} as {who}: {problem}"


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the application serves, documented or not (HEAD aside)."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        if route.path is None:
            continue
        found.update((method, route.path) for method in route.methods or () if method != "HEAD")
    for path, item in app.openapi().get("paths", {}).items():
        found.update((method.upper(), path) for method in item)
    return found


def roles_without_a_caller(scope: Scope) -> set[Role]:
    """Roles no column of the matrix holds: a new role needs callers (and rows) of its own."""
    return set(Role) - {role for caller in Caller for role in scope.claims(caller).roles}


def uncovered(app: FastAPI, table: Iterable[Route[Any]]) -> tuple[list[str], list[str]]:
    """Routes the application serves that the table lacks, and rows of the table for no route."""
    served = routes_of(app)
    listed = {(row.method, row.path) for row in table}
    return (
        [f"{method} {path}" for method, path in sorted(served - listed)],
        [f"{method} {path}" for method, path in sorted(listed - served)],
    )
