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


def _problem(response: httpx.Response, expected: int) -> str | None:
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
        problem = _problem(response, route.expected(caller))
        if problem is not None:
            found.append(f"{route} as {caller}: {problem}")
    for kind, headers in bad_credentials(route.bad_credential_claims(scope)).items():
        call = await route.prepare(api)
        expected = route.public if route.public is not None else 401
        problem = _problem(await _send(api.client, route, call, headers()), expected)
        if problem is not None:
            found.append(f"{route} with a bad credential ({kind}): {problem}")
    return found


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
