"""Rules that individual payloads enforce beyond field types."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from mpp.contracts.events import notification, queue, reporting
from mpp.contracts.events.common import AgeBand, ComplaintClass, SkmElement
from mpp.contracts.examples import example_payload

pytestmark = pytest.mark.unit

DOMAIN_EXAMPLE_TOTALS = (105, 101, 100, 116, 102, 105, 106, 105, 115)


def _skm(sums: tuple[int, ...], answers: int) -> reporting.SkmTotals:
    return reporting.SkmTotals(
        respondents=answers,
        elements=tuple(
            reporting.SkmElementTotal(element=e, answers=answers, score_sum=s)
            for e, s in zip(SkmElement, sums, strict=True)
        ),
    )


class TestSurveySubmitted:
    def test_a_score_outside_one_to_four_is_rejected(self) -> None:
        with pytest.raises(ValidationError):
            queue.SkmScores(u1=5)

    def test_an_empty_questionnaire_is_rejected(self) -> None:
        with pytest.raises(ValidationError, match="at least one SKM element"):
            queue.SkmScores()

    def test_answers_are_read_by_unsur_code(self) -> None:
        scores = queue.SkmScores(u3=2, u9=4)

        assert scores.answered() == {SkmElement.U3: 2, SkmElement.U9: 4}

    def test_the_payload_has_no_field_that_could_identify_the_respondent(self) -> None:
        assert set(queue.SurveySubmittedV1.model_fields) == {
            "survey_id",
            "service_type",
            "agency",
            "scores",
            "respondent",
            "channel",
            "submitted_at",
        }


class TestComplaintReceived:
    def test_an_anonymous_complaint_cannot_name_the_complainant(self) -> None:
        received = example_payload(queue.ComplaintReceivedV1)
        document = received.model_dump() | {"anonymous": True, "complainant_ref": "cz_5Jw2Qe8RbT1mXa7K"}

        with pytest.raises(ValidationError, match="anonymous"):
            queue.ComplaintReceivedV1.model_validate(document)

    @pytest.mark.parametrize(
        ("complaint_class", "days"),
        [
            (ComplaintClass.INFORMATION_REQUEST, 5),
            (ComplaintClass.COMPLAINT, 5),
            (ComplaintClass.DISPUTE, 14),
            (ComplaintClass.DISPUTE_FIELD_INSPECTION, 60),
        ],
    )
    def test_each_lapor_class_has_its_resolution_limit(
        self, complaint_class: ComplaintClass, days: int
    ) -> None:
        assert complaint_class.resolution_limit_days == days


class TestAppointmentBooked:
    def test_a_slot_that_ends_before_it_starts_is_rejected(self) -> None:
        booked = example_payload(queue.AppointmentBookedV1)
        assert isinstance(booked, queue.AppointmentBookedV1)
        document = booked.model_dump() | {"slot_end": booked.slot_start - timedelta(minutes=1)}

        with pytest.raises(ValidationError, match="slot_end"):
            queue.AppointmentBookedV1.model_validate(document)


class TestCitizenContactRegistered:
    def test_preferred_channel_needs_a_matching_contact(self) -> None:
        registered = example_payload(notification.CitizenContactRegisteredV1)
        document = registered.model_dump() | {"email": None, "preferred_channel": "email"}

        with pytest.raises(ValidationError, match="preferred channel email"):
            notification.CitizenContactRegisteredV1.model_validate(document)

    def test_a_phone_number_outside_e164_indonesia_is_rejected(self) -> None:
        registered = example_payload(notification.CitizenContactRegisteredV1)
        document = registered.model_dump() | {"phone": "081200000042"}

        with pytest.raises(ValidationError):
            notification.CitizenContactRegisteredV1.model_validate(document)


class TestDailySummaryPublished:
    def test_more_applications_within_sla_than_finished_is_rejected(self) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1).model_dump(mode="json")
        summary["services"][0]["applications_finished_within_sla"] = 10_000

        with pytest.raises(ValidationError, match="within SLA"):
            reporting.DailySummaryPublishedV1.model_validate(summary)

    def test_hourly_visitors_must_add_up(self) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1).model_dump(mode="json")
        summary["visitors"] += 1

        with pytest.raises(ValidationError, match="add up to visitors"):
            reporting.DailySummaryPublishedV1.model_validate(summary)

    def test_a_service_listed_twice_is_rejected(self) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1).model_dump(mode="json")
        summary["services"].append(summary["services"][0])

        with pytest.raises(ValidationError, match="duplicate"):
            reporting.DailySummaryPublishedV1.model_validate(summary)

    def test_a_histogram_of_the_wrong_length_is_rejected(self) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1).model_dump(mode="json")
        summary["services"][0]["waiting"] = {"count": 1, "sum_seconds": 60, "histogram": [1]}

        with pytest.raises(ValidationError, match="one entry more"):
            reporting.DailySummaryPublishedV1.model_validate(summary)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda s: s.update(visitors_by_channel={"walk_in": 1}), "visitors_by_channel must add up"),
            (
                lambda s: s["services"][1].update(applications_by_channel={"walk_in": 1}),
                "applications per channel",
            ),
            (
                lambda s: s["services"][1]["tickets_issued_by_hour"].__setitem__(8, 4),
                "tickets_issued_by_hour",
            ),
            (lambda s: s["services"][1].update(tickets_transferred_in=8), "transferred in"),
            (lambda s: s["services"][1].update(applications_with_sla_outcome=3), "SLA outcome"),
            (lambda s: s["services"][1].update(applications_working_days_count=3), "working days"),
            (lambda s: s["services"][1]["waiting"]["by_hour"][0].update(counts=[1, 1]), "hours' counts"),
            (lambda s: s["services"][1]["waiting"]["by_hour"][0].update(buckets=[0, 10]), "outside"),
            (lambda s: s["services"][1]["waiting"]["by_hour"][0].update(buckets=[1, 0]), "increasing"),
            (lambda s: s["services"][1]["waiting"]["by_hour"][1].update(hour=8), "duplicate"),
            (lambda s: s["complaints"][0].update(anonymous=2), "anonymous"),
        ],
    )
    def test_the_optional_figures_must_agree_with_the_totals(
        self, change: Callable[[dict[str, Any]], None], message: str
    ) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1).model_dump(mode="json")
        reporting.DailySummaryPublishedV1.model_validate(summary)
        change(summary)

        with pytest.raises(ValidationError, match=message):
            reporting.DailySummaryPublishedV1.model_validate(summary)

    def test_a_summary_without_the_optional_figures_is_valid(self) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1).model_dump(mode="json")
        for key in ("visitors_by_channel",):
            del summary[key]
        for service in summary["services"]:
            for key in (
                "tickets_transferred_in",
                "tickets_issued_by_hour",
                "priority_issued",
                "applications_by_channel",
                "applications_with_sla_outcome",
                "applications_working_days_count",
                "applications_working_days_sum",
            ):
                del service[key]
            for kind in ("waiting", "service"):
                del service[kind]["by_hour"]
        for complaint in summary["complaints"]:
            del complaint["service_type"], complaint["anonymous"]

        parsed = reporting.DailySummaryPublishedV1.model_validate(summary)

        assert parsed.visitors_by_channel is None
        assert parsed.services[1].applications_by_channel is None
        assert parsed.services[1].tickets_issued_by_hour == () and parsed.services[1].waiting.by_hour == ()

    def test_the_record_key_is_site_and_day(self) -> None:
        summary = example_payload(reporting.DailySummaryPublishedV1)
        assert isinstance(summary, reporting.DailySummaryPublishedV1)

        assert reporting.summary_key(summary.site, summary.day) == "mpp-kota-sukamaju:2026-03-02"


class TestIkm:
    def test_the_domain_example_gives_91_48_with_the_exact_weight(self) -> None:
        assert reporting.ikm(_skm(DOMAIN_EXAMPLE_TOTALS, 29)) == Decimal("91.48")

    def test_the_domain_example_is_grade_a(self) -> None:
        assert reporting.ikm_grade(Decimal("91.48")) is reporting.IkmGrade.A

    @pytest.mark.parametrize(
        ("index", "grade"),
        [
            ("88.31", reporting.IkmGrade.A),
            ("88.30", reporting.IkmGrade.B),
            ("76.61", reporting.IkmGrade.B),
            ("76.60", reporting.IkmGrade.C),
            ("65.00", reporting.IkmGrade.C),
            ("64.99", reporting.IkmGrade.D),
        ],
    )
    def test_grades_use_lower_bounds_only(self, index: str, grade: reporting.IkmGrade) -> None:
        assert reporting.ikm_grade(Decimal(index)) is grade

    def test_merged_site_totals_give_the_index_of_all_answers(self) -> None:
        first = _skm((40, 38, 37, 44, 39, 40, 41, 40, 44), 11)
        second = _skm((65, 63, 63, 72, 63, 65, 65, 65, 71), 18)

        assert reporting.ikm(reporting.merge_skm([first, second])) == reporting.ikm(
            _skm(DOMAIN_EXAMPLE_TOTALS, 29)
        )

    def test_no_index_without_answers_for_every_unsur(self) -> None:
        partial = reporting.SkmTotals(
            respondents=3,
            elements=(reporting.SkmElementTotal(element=SkmElement.U1, answers=3, score_sum=9),),
        )

        assert reporting.ikm(partial) is None

    def test_an_element_sum_above_four_per_answer_is_rejected(self) -> None:
        with pytest.raises(ValidationError, match="U1"):
            reporting.SkmElementTotal(element=SkmElement.U1, answers=2, score_sum=9)

    def test_element_index_is_25_times_the_mean(self) -> None:
        total = reporting.SkmElementTotal(element=SkmElement.U4, answers=29, score_sum=116)

        assert reporting.element_index(total) == Decimal("100.00")


class TestAgeBand:
    @pytest.mark.parametrize(
        ("age", "band"),
        [
            (16, AgeBand.UNDER_17),
            (17, AgeBand.FROM_17_TO_25),
            (45, AgeBand.FROM_36_TO_45),
            (59, AgeBand.FROM_46_TO_59),
            (60, AgeBand.SIXTY_PLUS),
        ],
    )
    def test_age_falls_in_its_band(self, age: int, band: AgeBand) -> None:
        assert AgeBand.of(age) is band
