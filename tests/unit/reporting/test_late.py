"""Late applications: the due day of the published standard, the days late, and which finishing events
the projection lists (codes and dates only)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope
from mpp.contracts.events.licensing import ApplicationRejectedV1, PermitIssuedV1
from mpp.contracts.examples import example_payload
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.reporting.domain.facts import LateApplication, fold_facts
from mpp.reporting.domain.sla import catalogue_due, catalogue_sla

SITE = "mpp-kota-sukamaju"
WIB = ZoneInfo("Asia/Jakarta")
CATALOGUE = load_demo_catalogue()


def tz(_site: str) -> ZoneInfo:
    return WIB


DUE = catalogue_due(CATALOGUE, tz)


class TestDueDay:
    def test_working_days_skip_weekends_and_holidays(self) -> None:
        # PBG: 28 working days from Monday 6 July 2026 (not counted) is Thursday 13 August; finished on
        # Tuesday 18 August: Friday 14 counts, Monday 17 August (Independence Day) does not, 18 does.
        submitted = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
        finished = datetime(2026, 8, 18, 3, 0, tzinfo=UTC)

        assert DUE(SITE, "dpmptsp.pbg", submitted, finished) == (date(2026, 8, 13), 2)

    def test_finished_by_the_due_day_is_not_late(self) -> None:
        submitted = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)

        assert DUE(SITE, "dpmptsp.pbg", submitted, datetime(2026, 8, 13, 9, 0, tzinfo=UTC)) == (
            date(2026, 8, 13),
            0,
        )

    def test_a_standard_in_minutes_falls_due_on_the_local_day_it_ends(self) -> None:
        # NIB in 60 minutes, asked at 23:30 WIB on 2 March: due at 00:30 on 3 March.
        submitted = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)

        assert DUE(SITE, "dpmptsp.nib", submitted, datetime(2026, 3, 3, 3, 0, tzinfo=UTC)) == (
            date(2026, 3, 3),
            0,
        )
        assert DUE(SITE, "dpmptsp.nib", submitted, datetime(2026, 3, 6, 3, 0, tzinfo=UTC)) == (
            date(2026, 3, 3),
            3,
        )

    @pytest.mark.parametrize(
        ("service_type", "submitted"),
        [
            ("dpmptsp.tidak-ada", datetime(2026, 3, 2, 2, 0, tzinfo=UTC)),
            ("dpmptsp.pbg", datetime(2026, 12, 20, 2, 0, tzinfo=UTC)),  # due in 2027: no calendar yet
        ],
        ids=["unknown service", "calendar not covered"],
    )
    def test_unknown_when_the_catalogue_cannot_say(self, service_type: str, submitted: datetime) -> None:
        assert DUE(SITE, service_type, submitted, datetime(2027, 3, 1, 2, 0, tzinfo=UTC)) is None


def _permit(ref: str, submitted: datetime, issued: datetime, within: bool | None, st: str) -> Envelope:
    payload = example_payload(PermitIssuedV1).model_copy(
        update={
            "application_id": ref,
            "service_type": st,
            "submitted_at": submitted,
            "issued_at": issued,
            "within_sla": within,
        }
    )
    return Envelope.wrap(payload, producer="mpp.licensing", agency="dpmptsp", site=SITE, subject=ref)


def test_only_late_finishes_are_listed_once_with_their_due_day() -> None:
    submitted = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    late = _permit("lic-1", submitted, datetime(2026, 3, 5, 2, 0, tzinfo=UTC), False, "dpmptsp.nib")
    rejected = Envelope.wrap(
        example_payload(ApplicationRejectedV1).model_copy(
            update={"rejected_at": datetime(2026, 3, 9, 2, 0, tzinfo=UTC)}
        ),
        producer="mpp.licensing",
        agency="dpmptsp",
        site=SITE,
        subject="lic-3",
    )
    events = [
        late,
        late,  # a duplicate in the batch keeps one row
        _permit("lic-2", submitted, datetime(2026, 3, 2, 2, 30, tzinfo=UTC), None, "dpmptsp.nib"),  # on time
        _permit(
            "lic-4", submitted, datetime(2026, 3, 9, 2, 0, tzinfo=UTC), None, "dpmptsp.nib"
        ),  # late by the catalogue
        rejected,
    ]

    facts = fold_facts(events, tz, catalogue_sla(CATALOGUE, tz), DUE)

    assert sorted(facts.late.values()) == [
        LateApplication(SITE, "lic-1", "dpmptsp", "dpmptsp.nib", date(2026, 3, 5), date(2026, 3, 2), 3),
        LateApplication(SITE, "lic-4", "dpmptsp", "dpmptsp.nib", date(2026, 3, 9), date(2026, 3, 2), 7),
    ]


def test_without_the_catalogue_the_due_day_is_unknown() -> None:
    submitted = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    facts = fold_facts(
        [_permit("lic-1", submitted, datetime(2026, 3, 5, 2, 0, tzinfo=UTC), False, "dpmptsp.nib")], tz
    )

    assert list(facts.late.values()) == [
        LateApplication(SITE, "lic-1", "dpmptsp", "dpmptsp.nib", date(2026, 3, 5), None, None)
    ]
