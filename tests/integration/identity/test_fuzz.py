"""The identity API under schema-driven fuzzing: no request, valid or not, makes it answer 5xx."""

from __future__ import annotations

import pytest

from mpp.kit.auth import Role
from tests.integration.identity.harness import IdentityApi, bearer, citizen, officer, person, supervisor
from tests.support.fuzz import Budget, fuzz

pytestmark = pytest.mark.integration


async def test_no_generated_request_gets_a_server_error(identity: IdentityApi) -> None:
    refs = [str((await identity.register(person(seed)))["citizen_ref"]) for seed in (1, 2)]
    # Registrars, listers and the citizen whose record exists take turns, so each route is reached
    # past its authorization by some of the requests.
    callers = [
        officer(),
        supervisor(),
        bearer(roles=[Role.OPERATOR], agency=None, subject="operator-1"),
        citizen(refs[0]),
    ]

    sent, failures = await fuzz(identity.client, callers, budget=Budget(), known={"citizen_ref": refs})

    assert not failures, "\n\n".join(failures)
    assert sent > 100
