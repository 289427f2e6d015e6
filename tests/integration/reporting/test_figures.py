"""Figures projected from licensing events into PostgreSQL, read back through the JSON API within each
caller's scope and date range."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mpp.contracts.events.licensing import ApplicationApprovedV1
from mpp.contracts.examples import example_envelope
from mpp.reporting.domain.projection import APPLICATIONS_SUBMITTED, PERMITS_ISSUED
from tests.integration.reporting.harness import (
    OTHER_SITE,
    SITE,
    ReportingApi,
    issued,
    ministry,
    officer,
    operator,
    submitted,
)

pytestmark = pytest.mark.integration

MORNING_MAR_2 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
MORNING_MAR_3 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
MORNING_MAR_5 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
# 23:30 on 2 March in WIB (SITE), already 00:30 on 3 March in WITA (OTHER_SITE).
LATE_MAR_2 = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)

FIRST_BATCH = [
    *(submitted(MORNING_MAR_2) for _ in range(3)),
    *(issued(MORNING_MAR_3) for _ in range(2)),
    *(submitted(MORNING_MAR_3, service_type="polres.sim-perpanjangan") for _ in range(2)),
    *(submitted(MORNING_MAR_2, site=OTHER_SITE, service_type="dpmptsp.nib") for _ in range(4)),
]
SECOND_BATCH = [
    *(submitted(MORNING_MAR_2) for _ in range(2)),
    submitted(LATE_MAR_2),
    submitted(LATE_MAR_2, site=OTHER_SITE, service_type="dpmptsp.nib"),
    issued(MORNING_MAR_5, site=OTHER_SITE, service_type="dpmptsp.nib"),
]


def row(day: str, site: str, service_type: str, metric: str, count: int) -> dict[str, Any]:
    agency = service_type.partition(".")[0]
    return {
        "day": day,
        "site": site,
        "agency": agency,
        "service_type": service_type,
        "metric": metric,
        "count": count,
    }


OTHER_MAR_2_NIB_SUBMITTED = row("2026-03-02", OTHER_SITE, "dpmptsp.nib", APPLICATIONS_SUBMITTED, 4)
SITE_MAR_2_PBG_SUBMITTED = row("2026-03-02", SITE, "dpmptsp.pbg", APPLICATIONS_SUBMITTED, 6)
OTHER_MAR_3_NIB_SUBMITTED = row("2026-03-03", OTHER_SITE, "dpmptsp.nib", APPLICATIONS_SUBMITTED, 1)
SITE_MAR_3_PBG_ISSUED = row("2026-03-03", SITE, "dpmptsp.pbg", PERMITS_ISSUED, 2)
SITE_MAR_3_SIM_SUBMITTED = row("2026-03-03", SITE, "polres.sim-perpanjangan", APPLICATIONS_SUBMITTED, 2)
OTHER_MAR_5_NIB_ISSUED = row("2026-03-05", OTHER_SITE, "dpmptsp.nib", PERMITS_ISSUED, 1)


@pytest.fixture
async def figures(reporting: ReportingApi) -> AsyncIterator[ReportingApi]:
    await reporting.project(FIRST_BATCH)
    await reporting.project(SECOND_BATCH)
    yield reporting


class TestMinistryFigures:
    async def test_ministry_sees_every_site(self, figures: ReportingApi) -> None:
        rows = await figures.daily(ministry())

        assert rows == [
            OTHER_MAR_2_NIB_SUBMITTED,
            SITE_MAR_2_PBG_SUBMITTED,
            OTHER_MAR_3_NIB_SUBMITTED,
            SITE_MAR_3_PBG_ISSUED,
            SITE_MAR_3_SIM_SUBMITTED,
            OTHER_MAR_5_NIB_ISSUED,
        ]
        assert await figures.totals(ministry()) == {APPLICATIONS_SUBMITTED: 13, PERMITS_ISSUED: 3}

    async def test_ministry_narrows_to_one_site(self, figures: ReportingApi) -> None:
        rows = await figures.daily(ministry(), site=OTHER_SITE)

        assert rows == [OTHER_MAR_2_NIB_SUBMITTED, OTHER_MAR_3_NIB_SUBMITTED, OTHER_MAR_5_NIB_ISSUED]
        assert await figures.totals(ministry(), site=OTHER_SITE) == {
            APPLICATIONS_SUBMITTED: 5,
            PERMITS_ISSUED: 1,
        }

    async def test_ministry_narrows_to_one_agency(self, figures: ReportingApi) -> None:
        rows = await figures.daily(ministry(), agency="polres")

        assert rows == [SITE_MAR_3_SIM_SUBMITTED]

    async def test_a_site_without_events_has_no_figures(self, figures: ReportingApi) -> None:
        assert await figures.daily(ministry(), site="mpp-kota-kosong") == []
        assert await figures.totals(ministry(), site="mpp-kota-kosong") == {}


class TestOperatorFigures:
    async def test_operator_sees_only_their_site(self, figures: ReportingApi) -> None:
        rows = await figures.daily(operator(SITE))

        assert rows == [SITE_MAR_2_PBG_SUBMITTED, SITE_MAR_3_PBG_ISSUED, SITE_MAR_3_SIM_SUBMITTED]
        assert await figures.totals(operator(SITE)) == {APPLICATIONS_SUBMITTED: 8, PERMITS_ISSUED: 2}

    async def test_operator_naming_their_own_site_gets_the_same_figures(self, figures: ReportingApi) -> None:
        rows = await figures.daily(operator(SITE), site=SITE)

        assert rows == [SITE_MAR_2_PBG_SUBMITTED, SITE_MAR_3_PBG_ISSUED, SITE_MAR_3_SIM_SUBMITTED]

    async def test_operator_narrows_to_one_agency_at_their_site(self, figures: ReportingApi) -> None:
        rows = await figures.daily(operator(OTHER_SITE), agency="dpmptsp")

        assert rows == [OTHER_MAR_2_NIB_SUBMITTED, OTHER_MAR_3_NIB_SUBMITTED, OTHER_MAR_5_NIB_ISSUED]


class TestAgencyStaffFigures:
    async def test_officer_sees_only_their_agency_at_their_site(self, figures: ReportingApi) -> None:
        rows = await figures.daily(officer("polres", SITE))

        assert rows == [SITE_MAR_3_SIM_SUBMITTED]
        assert await figures.totals(officer("polres", SITE)) == {APPLICATIONS_SUBMITTED: 2}

    async def test_officer_of_an_agency_at_two_sites_sees_only_their_own_site(
        self, figures: ReportingApi
    ) -> None:
        rows = await figures.daily(officer("dpmptsp", OTHER_SITE))

        assert rows == [OTHER_MAR_2_NIB_SUBMITTED, OTHER_MAR_3_NIB_SUBMITTED, OTHER_MAR_5_NIB_ISSUED]
        assert await figures.totals(officer("dpmptsp", SITE)) == {
            APPLICATIONS_SUBMITTED: 6,
            PERMITS_ISSUED: 2,
        }

    async def test_officer_of_an_agency_without_events_sees_nothing(self, figures: ReportingApi) -> None:
        assert await figures.daily(officer("disdukcapil", SITE)) == []


class TestFiguresByDateRange:
    async def test_a_single_day(self, figures: ReportingApi) -> None:
        rows = await figures.daily(ministry(), **{"from": "2026-03-03", "to": "2026-03-03"})

        assert rows == [OTHER_MAR_3_NIB_SUBMITTED, SITE_MAR_3_PBG_ISSUED, SITE_MAR_3_SIM_SUBMITTED]

    async def test_from_a_day_onwards(self, figures: ReportingApi) -> None:
        rows = await figures.daily(ministry(), **{"from": "2026-03-04"})

        assert rows == [OTHER_MAR_5_NIB_ISSUED]

    async def test_up_to_a_day(self, figures: ReportingApi) -> None:
        rows = await figures.daily(ministry(), to="2026-03-02")

        assert rows == [OTHER_MAR_2_NIB_SUBMITTED, SITE_MAR_2_PBG_SUBMITTED]

    async def test_totals_over_a_period_within_scope(self, figures: ReportingApi) -> None:
        totals = await figures.totals(operator(SITE), **{"from": "2026-03-03", "to": "2026-03-05"})

        assert totals == {APPLICATIONS_SUBMITTED: 2, PERMITS_ISSUED: 2}

    async def test_totals_echo_the_period_and_scope(self, figures: ReportingApi) -> None:
        response = await figures.client.get(
            "/v1/figures/totals", params={"from": "2026-03-02", "to": "2026-03-03"}, headers=operator(SITE)
        )

        body = response.json()
        assert (body["site"], body["agency"], body["from"], body["to"]) == (
            SITE,
            None,
            "2026-03-02",
            "2026-03-03",
        )
        assert body["totals"] == {APPLICATIONS_SUBMITTED: 8, PERMITS_ISSUED: 2}

    async def test_an_invalid_date_is_422_naming_the_parameter(self, figures: ReportingApi) -> None:
        response = await figures.client.get(
            "/v1/figures/daily", params={"from": "2026-02-30"}, headers=ministry()
        )

        assert response.status_code == 422
        assert [p["field"] for p in response.json()["error"]["details"]["problems"]] == ["query.from"]


class TestProjectingBatches:
    async def test_two_different_batches_add_up(self, reporting: ReportingApi) -> None:
        await reporting.project(FIRST_BATCH)
        after_first = await reporting.daily(operator(SITE), to="2026-03-02")

        await reporting.project(SECOND_BATCH)

        assert after_first == [row("2026-03-02", SITE, "dpmptsp.pbg", APPLICATIONS_SUBMITTED, 3)]
        assert await reporting.daily(operator(SITE), to="2026-03-02") == [SITE_MAR_2_PBG_SUBMITTED]
        assert await reporting.totals(ministry()) == {APPLICATIONS_SUBMITTED: 13, PERMITS_ISSUED: 3}

    async def test_the_same_instant_counts_on_each_sites_local_day(self, reporting: ReportingApi) -> None:
        await reporting.project([submitted(LATE_MAR_2), submitted(LATE_MAR_2, site=OTHER_SITE)])

        rows = await reporting.daily(ministry())

        assert rows == [
            row("2026-03-02", SITE, "dpmptsp.pbg", APPLICATIONS_SUBMITTED, 1),
            row("2026-03-03", OTHER_SITE, "dpmptsp.pbg", APPLICATIONS_SUBMITTED, 1),
        ]

    async def test_a_batch_without_projected_events_leaves_no_figures(self, reporting: ReportingApi) -> None:
        await reporting.project([example_envelope(ApplicationApprovedV1)])

        assert await reporting.daily(ministry()) == []
