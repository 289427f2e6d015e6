"""Every identity route against every role, a foreign agency and a foreign site, and every bad credential.

A route missing from ``MATRIX`` fails the coverage test: new endpoints get a row here.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

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


DOCUMENTS = "/v1/document-applications"


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"authz-{uuid.uuid4().hex}"}


async def _ktp_printing(api: IdentityApi, channel: str = "walk_in") -> dict[str, Any]:
    citizen = person(next(_seeds)) | {"site": SITE}
    await api.register(citizen)
    return {"service_type": "disdukcapil.ktp-el-cetak", "channel": channel, "ktp_el": {"nik": citizen["nik"]}}


async def document_request(api: IdentityApi) -> Call:
    return Call(body=await _ktp_printing(api), headers=_key())


async def online_document_request(api: IdentityApi) -> Call:
    return Call(body=await _ktp_printing(api, "online") | {"site": SITE}, headers=_key())


async def _submitted(api: IdentityApi) -> dict[str, Any]:
    officer = SCOPE.claims(Caller.OFFICER).bearer()
    response = await api.client.post(DOCUMENTS, json=await _ktp_printing(api), headers={**officer, **_key()})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def document_application(api: IdentityApi) -> Call:
    return Call(path={"application_id": (await _submitted(api))["id"]})


async def verifying_a_document(api: IdentityApi) -> Call:
    return Call(path={"application_id": (await _submitted(api))["id"], "action": "verify"}, body={})


async def tracked_document(api: IdentityApi) -> Call:
    return Call(path={"tracking_code": (await _submitted(api))["tracking_code"]})


async def issued_document(api: IdentityApi) -> Call:
    officer = SCOPE.claims(Caller.OFFICER).bearer()
    app_id = (await _submitted(api))["id"]
    for action in ("verify", "print"):
        done = await api.client.post(f"{DOCUMENTS}/{app_id}/actions/{action}", json={}, headers=officer)
        assert done.status_code == 200, done.text
    return Call(path={"application_id": app_id})


# Staff of another agency or site do not learn that an application exists.
_UNSEEN = {
    Caller.OFFICER_OTHER_AGENCY: 404,
    Caller.SUPERVISOR_OTHER_AGENCY: 404,
    Caller.OFFICER_OTHER_SITE: 404,
    Caller.SUPERVISOR_OTHER_SITE: 404,
}

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
    # At the counter, Disdukcapil staff take applications at their own site (KTP-el printing is served
    # at any site, whatever the citizen's domicile); a citizen applies online only, for themself.
    Route(
        "POST",
        DOCUMENTS,
        allow={
            Caller.OFFICER: 201,
            Caller.SUPERVISOR: 201,
            Caller.OFFICER_OTHER_SITE: 201,
            Caller.SUPERVISOR_OTHER_SITE: 201,
        },
        prepare=document_request,
    ),
    # Online for this site: staff of another site may not file it; a citizen may not file it for
    # someone else (the NIK is not theirs).
    Route(
        "POST",
        DOCUMENTS,
        allow={Caller.OFFICER: 201, Caller.SUPERVISOR: 201},
        prepare=online_document_request,
        variant="online",
    ),
    # The work queue is always the caller's own site's: another site's staff see an empty one.
    Route(
        "GET",
        DOCUMENTS,
        allow={
            Caller.OFFICER: 200,
            Caller.SUPERVISOR: 200,
            Caller.OFFICER_OTHER_SITE: 200,
            Caller.SUPERVISOR_OTHER_SITE: 200,
        },
    ),
    # An application out of the caller's scope answers like a missing one, whoever asks.
    Route(
        "GET",
        DOCUMENTS + "/{application_id}",
        allow={Caller.OFFICER: 200, Caller.SUPERVISOR: 200, Caller.CITIZEN: 404, **_UNSEEN},
        prepare=document_application,
    ),
    Route(
        "POST",
        DOCUMENTS + "/{application_id}/actions/{action}",
        allow={Caller.OFFICER: 200, Caller.SUPERVISOR: 403, Caller.CITIZEN: 404, **_UNSEEN},
        prepare=verifying_a_document,
    ),
    Route(
        "GET",
        DOCUMENTS + "/{application_id}/document",
        allow={
            Caller.OFFICER: 200,
            Caller.SUPERVISOR: 200,
            Caller.OFFICER_OTHER_SITE: 404,
            Caller.SUPERVISOR_OTHER_SITE: 404,
        },
        prepare=issued_document,
    ),
    Route("GET", DOCUMENTS + "/track/{tracking_code}", public=200, prepare=tracked_document),
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
