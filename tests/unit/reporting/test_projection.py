"""Folding events into daily counts: local days per site time zone, one count per key, other events ignored."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.licensing import (
    ApplicationApprovedV1,
    ApplicationSubmittedV1,
    PermitIssuedV1,
)
from mpp.contracts.events.queue import TicketIssuedV1
from mpp.contracts.examples import example_payload
from mpp.reporting.domain.projection import (
    APPLICATIONS_SUBMITTED,
    PERMITS_ISSUED,
    CountKey,
    fold,
)

pytestmark = pytest.mark.unit

SITE_WIB = "mpp-kota-sukamaju"
SITE_WITA = "mpp-kota-makassar"
SITE_WIT = "mpp-kota-jayapura"
ZONES = {
    SITE_WIB: ZoneInfo("Asia/Jakarta"),
    SITE_WITA: ZoneInfo("Asia/Makassar"),
    SITE_WIT: ZoneInfo("Asia/Jayapura"),
}


def site_tz(site: str) -> ZoneInfo:
    return ZONES[site]


def submitted(
    at: datetime, *, site: str = SITE_WIB, agency: str = "dpmptsp", service_type: str = "dpmptsp.pbg"
) -> Envelope:
    payload = example_payload(ApplicationSubmittedV1).model_copy(
        update={"submitted_at": at, "service_type": service_type}
    )
    return _wrap(payload, site=site, agency=agency)


def issued(
    at: datetime, *, site: str = SITE_WIB, agency: str = "dpmptsp", service_type: str = "dpmptsp.pbg"
) -> Envelope:
    payload = example_payload(PermitIssuedV1).model_copy(
        update={"issued_at": at, "service_type": service_type}
    )
    return _wrap(payload, site=site, agency=agency)


def _wrap(payload: EventPayload, *, site: str, agency: str) -> Envelope:
    return Envelope.wrap(payload, producer="mpp.licensing", agency=agency, site=site, subject="lic-1")


class TestFoldByLocalDay:
    def test_submission_at_2330_utc_counts_on_the_next_day_in_wib(self) -> None:
        counts = fold([submitted(datetime(2026, 3, 1, 23, 30, tzinfo=UTC))], site_tz)

        assert counts == Counter(
            {CountKey(date(2026, 3, 2), SITE_WIB, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 1}
        )

    @pytest.mark.parametrize(
        ("site", "at", "day"),
        [
            # 16:30 UTC is 23:30 WIB, 00:30 WITA and 01:30 WIT.
            (SITE_WIB, datetime(2026, 3, 1, 16, 30, tzinfo=UTC), date(2026, 3, 1)),
            (SITE_WITA, datetime(2026, 3, 1, 16, 30, tzinfo=UTC), date(2026, 3, 2)),
            (SITE_WIT, datetime(2026, 3, 1, 16, 30, tzinfo=UTC), date(2026, 3, 2)),
            # 15:30 UTC is 22:30 WIB, 23:30 WITA and 00:30 WIT.
            (SITE_WIB, datetime(2026, 3, 1, 15, 30, tzinfo=UTC), date(2026, 3, 1)),
            (SITE_WITA, datetime(2026, 3, 1, 15, 30, tzinfo=UTC), date(2026, 3, 1)),
            (SITE_WIT, datetime(2026, 3, 1, 15, 30, tzinfo=UTC), date(2026, 3, 2)),
            # 16:59:59 UTC is the last second of the day in WIB.
            (SITE_WIB, datetime(2026, 3, 1, 16, 59, 59, tzinfo=UTC), date(2026, 3, 1)),
            (SITE_WIB, datetime(2026, 3, 1, 17, 0, tzinfo=UTC), date(2026, 3, 2)),
        ],
    )
    def test_day_is_the_local_day_in_the_site_time_zone(self, site: str, at: datetime, day: date) -> None:
        counts = fold([submitted(at, site=site), issued(at, site=site)], site_tz)

        assert counts == Counter(
            {
                CountKey(day, site, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 1,
                CountKey(day, site, "dpmptsp", "dpmptsp.pbg", PERMITS_ISSUED): 1,
            }
        )

    def test_a_local_offset_in_the_payload_does_not_change_the_site_day(self) -> None:
        jayapura_morning = datetime(2026, 3, 2, 1, 30, tzinfo=ZoneInfo("Asia/Jayapura"))

        counts = fold([submitted(jayapura_morning, site=SITE_WIB)], site_tz)

        assert list(counts) == [
            CountKey(date(2026, 3, 1), SITE_WIB, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED)
        ]


class TestFoldByKey:
    def test_counts_each_site_agency_service_type_and_metric_separately(self) -> None:
        morning = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
        events = [
            submitted(morning),
            submitted(morning),
            submitted(morning, service_type="dpmptsp.nib"),
            submitted(morning, site=SITE_WITA),
            submitted(morning, agency="polres", service_type="polres.sim-perpanjangan"),
            issued(morning),
            issued(morning),
            issued(morning),
        ]

        counts = fold(events, site_tz)

        day = date(2026, 3, 2)
        assert counts == Counter(
            {
                CountKey(day, SITE_WIB, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 2,
                CountKey(day, SITE_WIB, "dpmptsp", "dpmptsp.nib", APPLICATIONS_SUBMITTED): 1,
                CountKey(day, SITE_WITA, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 1,
                CountKey(day, SITE_WIB, "polres", "polres.sim-perpanjangan", APPLICATIONS_SUBMITTED): 1,
                CountKey(day, SITE_WIB, "dpmptsp", "dpmptsp.pbg", PERMITS_ISSUED): 3,
            }
        )

    def test_events_on_different_local_days_are_counted_apart(self) -> None:
        events = [
            submitted(datetime(2026, 3, 2, 16, 0, tzinfo=UTC)),
            submitted(datetime(2026, 3, 2, 18, 0, tzinfo=UTC)),
        ]

        counts = fold(events, site_tz)

        assert counts == Counter(
            {
                CountKey(date(2026, 3, 2), SITE_WIB, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 1,
                CountKey(date(2026, 3, 3), SITE_WIB, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 1,
            }
        )


class TestFoldIgnoresOtherEvents:
    def test_events_that_are_not_projected_add_nothing(self) -> None:
        events = [
            _wrap(example_payload(ApplicationApprovedV1), site=SITE_WIB, agency="dpmptsp"),
            _wrap(example_payload(TicketIssuedV1), site=SITE_WIB, agency="disdukcapil"),
        ]

        assert fold(events, site_tz) == Counter()

    def test_other_events_in_a_batch_do_not_disturb_the_counts(self) -> None:
        at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
        events = [
            submitted(at),
            _wrap(example_payload(ApplicationApprovedV1), site=SITE_WIB, agency="dpmptsp"),
            issued(at),
        ]

        counts = fold(events, site_tz)

        assert counts == Counter(
            {
                CountKey(date(2026, 3, 2), SITE_WIB, "dpmptsp", "dpmptsp.pbg", APPLICATIONS_SUBMITTED): 1,
                CountKey(date(2026, 3, 2), SITE_WIB, "dpmptsp", "dpmptsp.pbg", PERMITS_ISSUED): 1,
            }
        )

    def test_an_empty_batch_folds_to_nothing(self) -> None:
        assert fold([], site_tz) == Counter()
