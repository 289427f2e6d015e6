"""Every reporting route against every role, a foreign agency and a foreign site, and every bad credential.

A route missing from ``MATRIX`` fails the coverage test: new endpoints get a row here.
"""

from __future__ import annotations

import pytest

from mpp.kit.auth import Role
from mpp.reporting.api.page_auth import LOGIN_PATH
from tests.integration.reporting.harness import OTHER_SITE, SECRET, SITE, ReportingApi
from tests.support.authz import (
    PROBES,
    Call,
    Caller,
    Route,
    Scope,
    mismatch_of,
    mismatches,
    roles_without_a_caller,
    uncovered,
)
from tests.support.tokens import Claims

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

RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


async def home_site_page(api: ReportingApi) -> Call:
    return Call(path={"site": SCOPE.site}, query=RANGE)


async def home_agency_page(api: ReportingApi) -> Call:
    """The home agency at the home site."""
    return Call(path={"site": SCOPE.site, "agency": SCOPE.agency}, query=RANGE)


async def home_agency_everywhere(api: ReportingApi) -> Call:
    return Call(path={"agency": SCOPE.agency}, query=RANGE)


async def national_page(api: ReportingApi) -> Call:
    return Call(query=RANGE)


async def one_definition(api: ReportingApi) -> Call:
    return Call(path={"metric": "M6"})


# Every reader is sent on to their own dashboard.
ANY_READER_REDIRECTED = {caller: 303 for caller in ANY_READER}

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
    Route("GET", "/laporan/bulanan/{site}/{month}", allow=MONTHLY, prepare=home_month, page=LOGIN_PATH),
    Route("GET", "/laporan/bulanan/{site}/{month}.xlsx", allow=MONTHLY, prepare=home_month, page=LOGIN_PATH),
    Route("GET", "/laporan/bulanan/{site}/{month}.csv", allow=MONTHLY, prepare=home_month, page=LOGIN_PATH),
    # Dashboard sign-in: the form decides, not the Authorization header (an empty form is a 422).
    Route("GET", "/dasbor/masuk", public=200),
    Route("POST", "/dasbor/masuk", public=422),
    Route("POST", "/dasbor/keluar", public=303),
    # Dashboards: without a credential a page redirects to the sign-in form; refusals are HTML pages.
    Route("GET", "/dasbor", allow=ANY_READER_REDIRECTED, page=LOGIN_PATH),
    Route("GET", "/dasbor/nasional", allow={Caller.MINISTRY: 200}, prepare=national_page, page=LOGIN_PATH),
    Route(
        "GET",
        "/dasbor/mpp/{site}",
        allow={Caller.OPERATOR: 200, Caller.MINISTRY: 200},
        prepare=home_site_page,
        page=LOGIN_PATH,
    ),
    Route(
        "GET",
        "/dasbor/mpp/{site}/instansi/{agency}",
        allow=READERS,
        prepare=home_agency_page,
        page=LOGIN_PATH,
    ),
    Route(
        "GET",
        "/dasbor/instansi/{agency}",
        allow={Caller.MINISTRY: 200},
        prepare=home_agency_everywhere,
        page=LOGIN_PATH,
    ),
    Route("GET", "/dasbor/definisi", allow=ANY_READER, page=LOGIN_PATH),
    Route("GET", "/dasbor/definisi/{metric}", allow=ANY_READER, prepare=one_definition, page=LOGIN_PATH),
    Route("GET", "/dasbor/aset/dasbor.css", public=200),
    Route("GET", "/dasbor/aset/dasbor.js", public=200),
]

# An agency-wide user (an officer or supervisor token with an agency claim and no site) is no column of
# the shared matrix: their answers from every reporting route, as the home agency's and a foreign
# agency's user. Routes not named answer 403.
AGENCY_WIDE_HOME = {
    "GET /v1/figures/daily": 200,
    "GET /v1/figures/totals": 200,
    "GET /v1/metrics": 200,
    "GET /v1/metrics/{metric}": 200,
    "GET /v1/metrics/{metric}/definition": 200,
    "GET /v1/overview": 200,
    "GET /v1/exports/{table}.csv": 200,
    "GET /v1/exports/{table}.xlsx": 200,
    "GET /dasbor": 303,
    "GET /dasbor/mpp/{site}/instansi/{agency}": 200,
    "GET /dasbor/instansi/{agency}": 200,
    "GET /dasbor/definisi": 200,
    "GET /dasbor/definisi/{metric}": 200,
}
AGENCY_WIDE_FOREIGN = {
    "GET /v1/metrics": 200,
    "GET /v1/metrics/{metric}/definition": 200,
    "GET /dasbor": 303,
    "GET /dasbor/definisi": 200,
    "GET /dasbor/definisi/{metric}": 200,
}


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


@pytest.mark.parametrize("role", [Role.OFFICER, Role.SUPERVISOR])
async def test_agency_wide_users_see_their_agency_everywhere_and_nothing_else(
    reporting: ReportingApi, role: Role
) -> None:
    found = []
    for agency, table in ((SCOPE.agency, AGENCY_WIDE_HOME), (SCOPE.other_agency, AGENCY_WIDE_FOREIGN)):
        claims = Claims(SECRET, subject="agency-wide-1", roles=[role], agency=agency)
        for route in MATRIX:
            if route.public is not None:
                continue
            problem = await mismatch_of(
                reporting, route, claims, table.get(str(route), 403), f"agency-wide {role} of {agency}"
            )
            if problem is not None:
                found.append(problem)

    assert not found, "\n".join(found)


async def test_an_agency_wide_table_row_for_every_route_it_names() -> None:
    listed = {str(route) for route in MATRIX}
    assert set(AGENCY_WIDE_HOME) <= listed
    assert set(AGENCY_WIDE_FOREIGN) <= listed
