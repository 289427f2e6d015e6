"""Every identity route against every role, a foreign agency and a foreign site, and every bad credential.

A route missing from ``MATRIX`` fails the coverage test: new endpoints get a row here.
"""

from __future__ import annotations

import itertools

import pytest

from tests.integration.identity.harness import AGENCY, OTHER_SITE, SECRET, SITE, IdentityApi, person
from tests.support.authz import (
    PROBES,
    Call,
    Caller,
    Route,
    Scope,
    mismatches,
    roles_without_a_caller,
    uncovered,
)

pytestmark = pytest.mark.integration

SCOPE = Scope(secret=SECRET, agency=AGENCY, site=SITE, other_agency="dpmptsp", other_site=OTHER_SITE)
_seeds = itertools.count(7000)


async def new_person(api: IdentityApi) -> Call:
    """A registration for this site, of a NIK nobody registered yet."""
    return Call(body=person(next(_seeds)) | {"site": SITE})


async def registered(api: IdentityApi) -> Call:
    created = await api.register(person(next(_seeds)))
    return Call(path={"citizen_ref": created["citizen_ref"]})


async def moving_out(api: IdentityApi) -> Call:
    created = await api.register(person(next(_seeds)))
    return Call(path={"citizen_ref": created["citizen_ref"]}, body={"status": "moved_out"})


# Callers not named in `allow` get 403; a record of another site answers 404, like a missing one.
MATRIX: list[Route[IdentityApi]] = [
    *PROBES,
    Route("POST", "/v1/citizens", allow={Caller.OFFICER: 201, Caller.SUPERVISOR: 201}, prepare=new_person),
    # Each site's staff list their own site's citizens: the foreign site's list is empty, not the home one.
    Route(
        "GET",
        "/v1/citizens",
        allow={
            Caller.SUPERVISOR: 200,
            Caller.OPERATOR: 200,
            Caller.SUPERVISOR_OTHER_SITE: 200,
            Caller.OPERATOR_OTHER_SITE: 200,
        },
    ),
    Route(
        "GET",
        "/v1/citizens/{citizen_ref}",
        allow={
            Caller.OFFICER: 200,
            Caller.SUPERVISOR: 200,
            Caller.OFFICER_OTHER_SITE: 404,
            Caller.SUPERVISOR_OTHER_SITE: 404,
        },
        prepare=registered,
    ),
    Route(
        "PUT",
        "/v1/citizens/{citizen_ref}/status",
        allow={Caller.SUPERVISOR: 200, Caller.SUPERVISOR_OTHER_SITE: 404},
        prepare=moving_out,
    ),
    Route("GET", "/v1/me/access-log", allow={Caller.CITIZEN: 200}),
]


@pytest.mark.parametrize("route", MATRIX, ids=str)
async def test_each_caller_gets_the_answer_of_the_matrix(
    identity: IdentityApi, route: Route[IdentityApi]
) -> None:
    found = await mismatches(identity, route, SCOPE)

    assert not found, "\n".join(found)


async def test_the_matrix_covers_every_route(identity: IdentityApi) -> None:
    missing, stale = uncovered(identity.app, MATRIX)

    assert not missing, "Routes without a row in the identity authorization matrix:\n" + "\n".join(missing)
    assert not stale, "Rows of the identity authorization matrix for no route:\n" + "\n".join(stale)
    assert not roles_without_a_caller(SCOPE), "Roles without a column in the authorization matrix"
