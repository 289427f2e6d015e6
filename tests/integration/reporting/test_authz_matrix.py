"""Every reporting route against every role, a foreign agency and a foreign site, and every bad credential.

A route missing from ``MATRIX`` fails the coverage test: new endpoints get a row here.
"""

from __future__ import annotations

import pytest

from tests.integration.reporting.harness import OTHER_SITE, SECRET, SITE, ReportingApi
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

SCOPE = Scope(secret=SECRET, agency="dpmptsp", site=SITE, other_agency="polres", other_site=OTHER_SITE)


async def home_figures(api: ReportingApi) -> Call:
    """Figures of the home agency at the home site: foreign staff ask for what is not theirs."""
    return Call(query={"agency": SCOPE.agency, "site": SCOPE.site, "from": "2026-03-01", "to": "2026-03-31"})


async def home_metric(api: ReportingApi) -> Call:
    """One metric of the home agency at the home site."""
    call = await home_figures(api)
    return Call(path={"metric": "M4"}, query=call.query)


async def home_export(api: ReportingApi) -> Call:
    """One metric of the home agency at the home site, as a file."""
    call = await home_figures(api)
    return Call(path={"table": "metric-M4"}, query=call.query)


async def home_month(api: ReportingApi) -> Call:
    """The monthly report of the home site."""
    return Call(path={"site": SCOPE.site, "month": "2026-03"})


READERS = {Caller.OFFICER: 200, Caller.SUPERVISOR: 200, Caller.OPERATOR: 200, Caller.MINISTRY: 200}

# Definitions are the same for every reader, whatever their agency or site.
ANY_READER = {
    **READERS,
    Caller.OFFICER_OTHER_AGENCY: 200,
    Caller.SUPERVISOR_OTHER_AGENCY: 200,
    Caller.OFFICER_OTHER_SITE: 200,
    Caller.SUPERVISOR_OTHER_SITE: 200,
    Caller.OPERATOR_OTHER_SITE: 200,
}

# The monthly report covers the whole MPP: the ministry and the site's operator, not agency staff.
MONTHLY = {Caller.OPERATOR: 200, Caller.MINISTRY: 200}

# Callers not named in `allow` get 403.
MATRIX: list[Route[ReportingApi]] = [
    *PROBES,
    Route("GET", "/v1/figures/daily", allow=READERS, prepare=home_figures),
    Route("GET", "/v1/figures/totals", allow=READERS, prepare=home_figures),
    Route("GET", "/v1/metrics", allow=ANY_READER),
    Route("GET", "/v1/metrics/{metric}", allow=READERS, prepare=home_metric),
    Route("GET", "/v1/metrics/{metric}/definition", allow=ANY_READER, prepare=home_metric),
    Route("GET", "/v1/overview", allow=READERS, prepare=home_figures),
    Route("GET", "/v1/exports/{table}.csv", allow=READERS, prepare=home_export),
    Route("GET", "/v1/exports/{table}.xlsx", allow=READERS, prepare=home_export),
    Route("GET", "/v1/reports/monthly/{site}/{month}", allow=MONTHLY, prepare=home_month),
    Route("GET", "/v1/reports/monthly/{site}/{month}.xlsx", allow=MONTHLY, prepare=home_month),
    Route("GET", "/v1/reports/monthly/{site}/{month}.csv", allow=MONTHLY, prepare=home_month),
    # Pages take the header or the sign-in cookie; without either they redirect to the sign-in form.
    Route("GET", "/laporan/bulanan/{site}/{month}", allow=MONTHLY, prepare=home_month, signed_out=303),
    Route("GET", "/laporan/bulanan/{site}/{month}.xlsx", allow=MONTHLY, prepare=home_month, signed_out=303),
    Route("GET", "/laporan/bulanan/{site}/{month}.csv", allow=MONTHLY, prepare=home_month, signed_out=303),
    # Dashboard sign-in: the form decides, not the Authorization header (an empty form is a 422).
    Route("GET", "/dasbor/masuk", public=200),
    Route("POST", "/dasbor/masuk", public=422),
    Route("POST", "/dasbor/keluar", public=303),
]


@pytest.mark.parametrize("route", MATRIX, ids=str)
async def test_each_caller_gets_the_answer_of_the_matrix(
    reporting: ReportingApi, route: Route[ReportingApi]
) -> None:
    found = await mismatches(reporting, route, SCOPE)

    assert not found, "\n".join(found)


async def test_the_matrix_covers_every_route(reporting: ReportingApi) -> None:
    missing, stale = uncovered(reporting.app, MATRIX)

    assert not missing, "Routes without a row in the reporting authorization matrix:\n" + "\n".join(missing)
    assert not stale, "Rows of the reporting authorization matrix for no route:\n" + "\n".join(stale)
    assert not roles_without_a_caller(SCOPE), "Roles without a column in the authorization matrix"
