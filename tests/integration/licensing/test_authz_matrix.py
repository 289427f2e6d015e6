"""Every licensing route against every role, a foreign agency and a foreign site, and every bad credential.

A route missing from ``MATRIX`` fails the coverage test: new endpoints get a row here.
"""

from __future__ import annotations

import itertools

import pytest

from tests.integration.licensing.harness import (
    AGENCY,
    OTHER_SITE,
    SECRET,
    SITE,
    LicensingApi,
    officer,
    submission,
)
from tests.support.authz import (
    FOREIGN,
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

SCOPE = Scope(secret=SECRET, agency=AGENCY, site=SITE, other_agency="disdukcapil", other_site=OTHER_SITE)
_seeds = itertools.count(7000)


async def at_the_counter(api: LicensingApi) -> Call:
    return Call(body=submission(seed=next(_seeds)))


async def online(api: LicensingApi) -> Call:
    return Call(body=submission(seed=next(_seeds), channel="online"))


async def submitted(api: LicensingApi) -> Call:
    """An application of the home agency and site, its NIK verified, waiting for an officer."""
    application_id = await api.submit(submission(seed=next(_seeds)), officer())
    return Call(path={"application_id": application_id})


async def to_verify(api: LicensingApi) -> Call:
    application_id = await api.submit(submission(seed=next(_seeds)), officer())
    return Call(path={"application_id": application_id, "action": "verify"})


async def tracked(api: LicensingApi) -> Call:
    response = await api.client.post(
        "/v1/applications", json=submission(seed=next(_seeds)), headers=officer()
    )
    assert response.status_code == 201, response.text
    return Call(path={"tracking_code": response.json()["tracking_code"]})


async def permit_number(api: LicensingApi) -> Call:
    return Call(query={"number": "503/PBG/2026/000001"})


async def home_scope(api: LicensingApi) -> Call:
    """The home agency's list at the home site: foreign staff ask for what is not theirs."""
    return Call(query={"agency": AGENCY, "site": SITE})


READERS = {Caller.OFFICER: 200, Caller.SUPERVISOR: 200, Caller.OPERATOR: 200, Caller.MINISTRY: 200}
# Another agency's or site's application answers exactly like a missing one.
NOT_FOUND_ELSEWHERE = dict.fromkeys(FOREIGN, 404)

# Callers not named in `allow` get 403.
MATRIX: list[Route[LicensingApi]] = [
    *PROBES,
    Route(
        "POST",
        "/v1/applications",
        allow={Caller.OFFICER: 201, Caller.SUPERVISOR: 201},
        prepare=at_the_counter,
    ),
    Route(
        "POST",
        "/v1/applications",
        allow={Caller.OFFICER: 201, Caller.SUPERVISOR: 201, Caller.CITIZEN: 201},
        prepare=online,
        variant="online",
    ),
    Route(
        "GET",
        "/v1/applications/{application_id}",
        allow=READERS | NOT_FOUND_ELSEWHERE,
        prepare=submitted,
    ),
    # The workflow gives `verify` to officers: a supervisor of the agency is refused by the workflow (403).
    Route(
        "POST",
        "/v1/applications/{application_id}/actions/{action}",
        allow={Caller.OFFICER: 200} | dict.fromkeys(FOREIGN - {Caller.OPERATOR_OTHER_SITE}, 404),
        prepare=to_verify,
    ),
    Route("GET", "/v1/applications", allow=READERS, prepare=home_scope),
    Route(
        "GET",
        "/v1/supervision/sla",
        allow={Caller.SUPERVISOR: 200, Caller.OPERATOR: 200, Caller.MINISTRY: 200},
        prepare=home_scope,
    ),
    Route("GET", "/v1/track/{tracking_code}", public=200, prepare=tracked),
    Route("GET", "/v1/permits/verification", public=200, prepare=permit_number),
]


@pytest.mark.parametrize("route", MATRIX, ids=str)
async def test_each_caller_gets_the_answer_of_the_matrix(
    licensing: LicensingApi, route: Route[LicensingApi]
) -> None:
    found = await mismatches(licensing, route, SCOPE)

    assert not found, "\n".join(found)


async def test_the_matrix_covers_every_route(licensing: LicensingApi) -> None:
    missing, stale = uncovered(licensing.app, MATRIX)

    assert not missing, "Routes without a row in the licensing authorization matrix:\n" + "\n".join(missing)
    assert not stale, "Rows of the licensing authorization matrix for no route:\n" + "\n".join(stale)
    assert not roles_without_a_caller(SCOPE), "Roles without a column in the authorization matrix"
