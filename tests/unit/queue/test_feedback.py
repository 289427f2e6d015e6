"""SKM answers, survey invitations and complaint time limits in working days (pure domain)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.events.common import (
    AgeBand,
    Channel,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintClass,
    PriorityGroup,
    SkmElement,
)
from mpp.contracts.events.queue import ComplaintOutcome, SurveyChannel
from mpp.queue.domain.complaints import (
    Complaint,
    ComplaintState,
    due_at,
    new_tracking_code,
    receipt_day,
    working_days_elapsed,
)
from mpp.queue.domain.model import Ticket, TicketState, Visit, WrongState, seconds
from mpp.queue.domain.surveys import (
    InvalidAnswers,
    SurveyAlreadyAnswered,
    SurveyClosed,
    SurveyInvitation,
    parse_answers,
    questionnaire,
)

pytestmark = pytest.mark.unit

WIB = ZoneInfo("Asia/Jakarta")


def wib(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=WIB)


class Days:
    """Monday to Friday, closing at 16:00 WIB, with the listed holidays."""

    def __init__(self, *holidays: date) -> None:
        self.holidays = set(holidays)

    def is_working_day(self, d: date) -> bool:
        return d.isoweekday() <= 5 and d not in self.holidays

    def closing_time(self, d: date) -> datetime:
        return datetime.combine(d, time(16), tzinfo=WIB)

    def local_day(self, instant: datetime) -> date:
        return instant.astimezone(WIB).date()


# --- survey answers -----------------------------------------------------------------------------


def test_answers_are_stored_by_element_code_whatever_the_case() -> None:
    answers = parse_answers({"u1": 4, "U9": 1, "U4": None}, {"age_band": "60_plus"}, "kiosk")

    assert answers.scores.answered() == {SkmElement.U1: 4, SkmElement.U9: 1}
    assert answers.age_band is AgeBand.SIXTY_PLUS and answers.channel is SurveyChannel.KIOSK


@pytest.mark.parametrize(
    ("scores", "profile", "channel", "field"),
    [
        ({"U1": 0}, {}, "online", "scores.U1"),
        ({"U1": 5}, {}, "online", "scores.U1"),
        ({"U1": 2.5}, {}, "online", "scores.U1"),
        ({"U1": "4"}, {}, "online", "scores.U1"),
        ({"U1": True}, {}, "online", "scores.U1"),
        ({"U0": 3}, {}, "online", "scores.U0"),
        ({}, {}, "online", "scores"),
        ({"U1": None}, {}, "online", "scores"),
        ({"U1": 3}, {"sex": "x"}, "online", "respondent.sex"),
        ({"U1": 3}, {"name": "Budi"}, "online", "respondent.name"),
        ({"U1": 3}, {}, "fax", "channel"),
    ],
)
def test_invalid_answers_name_their_field(
    scores: dict[str, Any], profile: dict[str, Any], channel: str, field: str
) -> None:
    with pytest.raises(InvalidAnswers) as raised:
        parse_answers(scores, profile, channel)

    assert field in [p["field"] for p in raised.value.problems]


def test_every_problem_is_reported_at_once_in_bahasa_indonesia() -> None:
    with pytest.raises(InvalidAnswers) as raised:
        parse_answers({"U3": 9, "U7": 0}, {"education": "phd"})

    problems = {p["field"]: p["problem"] for p in raised.value.problems}
    assert set(problems) == {"scores.U3", "scores.U7", "respondent.education"}
    assert "Waktu penyelesaian" in problems["scores.U3"] and "Perilaku pelaksana" in problems["scores.U7"]


def test_the_questionnaire_lists_the_nine_official_elements_and_the_scale() -> None:
    q = questionnaire()

    assert [e["code"] for e in q["elements"]] == [f"U{i}" for i in range(1, 10)]
    assert q["elements"][8]["name"] == "Penanganan pengaduan, saran, dan masukan"
    assert [s["value"] for s in q["scale"]] == [1, 2, 3, 4]
    assert set(q["respondent"]) == {"sex", "age_band", "education", "occupation"}


def test_an_invitation_is_open_until_its_window_closes_and_only_once() -> None:
    done = wib(3, 10)
    inv = SurveyInvitation.after_completion(
        ticket_id="t1", site="s", agency="a", service_type="x", at=done, window=timedelta(hours=24)
    )
    other = SurveyInvitation.after_completion(
        ticket_id="t2", site="s", agency="a", service_type="x", at=done, window=timedelta(hours=24)
    )

    assert inv.token != other.token and len(inv.token) >= 20
    inv.ensure_open(done + timedelta(hours=24))
    with pytest.raises(SurveyClosed):
        inv.ensure_open(done + timedelta(hours=24, seconds=1))
    inv.answered_at = done + timedelta(minutes=5)
    with pytest.raises(SurveyAlreadyAnswered):
        inv.ensure_open(done + timedelta(minutes=6))
    assert inv.state(done) == "answered" and other.state(done + timedelta(days=2)) == "closed"


# --- working days -------------------------------------------------------------------------------


def test_receipt_after_closing_or_on_a_day_off_counts_from_the_next_working_day() -> None:
    days = Days()

    assert receipt_day(days, wib(6, 16)) == date(2026, 11, 6)  # Friday at closing time
    assert receipt_day(days, wib(6, 16, 1)) == date(2026, 11, 9)  # a minute later: Monday
    assert receipt_day(days, wib(7, 10)) == date(2026, 11, 9)  # Saturday


@pytest.mark.parametrize(
    ("received", "limit", "due"),
    [
        (wib(3, 9, 15), 3, wib(6, 16)),  # Tuesday: due Friday at closing
        (wib(3, 9, 15), 5, wib(10, 16)),  # over the weekend
        (wib(6, 15, 59), 1, wib(9, 16)),  # Friday before closing: Monday
        (wib(6, 16, 1), 1, wib(10, 16)),  # Friday after closing: Tuesday
        (wib(7, 11), 2, wib(11, 16)),  # Saturday counts as Monday
        (wib(3, 9, 15), 14, wib(23, 16)),
    ],
)
def test_due_dates_count_working_days_after_receipt(received: datetime, limit: int, due: datetime) -> None:
    assert due_at(Days(), received, limit) == due


def test_holidays_do_not_count() -> None:
    # Wednesday 4 and Thursday 5 November off: 3 days from Tuesday run to Monday 9... and Tuesday 10.
    days = Days(date(2026, 11, 4), date(2026, 11, 5))

    assert due_at(days, wib(3, 9), 3) == wib(10, 16)
    assert working_days_elapsed(days, wib(3, 9), wib(6, 10)) == 1


def test_elapsed_working_days_leave_out_the_day_of_receipt() -> None:
    days, received = Days(), wib(3, 9, 15)

    assert working_days_elapsed(days, received, wib(3, 15)) == 0
    assert working_days_elapsed(days, received, wib(6, 16)) == 3
    assert working_days_elapsed(days, received, wib(6, 16, 1)) == 4  # after closing: Monday's
    assert working_days_elapsed(days, received, wib(8, 10)) == 4  # Sunday: Monday's


# --- complaints ---------------------------------------------------------------------------------


def complaint(cls: ComplaintClass = ComplaintClass.COMPLAINT, **kw: Any) -> Complaint:
    args: dict[str, Any] = {
        "id": "c1",
        "tracking_code": "ADU-ABCDEFGH",
        "site": "s",
        "channel": ComplaintChannel.COUNTER,
        "category": ComplaintCategory.QUEUE,
        "complaint_class": cls,
        "anonymous": False,
        "description": "Antrean lama",
        "at": wib(3, 9, 15),
        "received_by": "officer-1",
        "days": Days(),
        "complainant_ref": "ref-1",
        "contact": "0812",
    } | kw
    return Complaint.receive(**args)


@pytest.mark.parametrize(
    ("cls", "days", "due"),
    [
        (ComplaintClass.INFORMATION_REQUEST, 5, wib(10, 16)),
        (ComplaintClass.COMPLAINT, 5, wib(10, 16)),
        (ComplaintClass.DISPUTE, 14, wib(23, 16)),
        (ComplaintClass.DISPUTE_FIELD_INSPECTION, 60, wib(26, 16, month=1).replace(year=2027)),
    ],
)
def test_each_class_has_its_resolution_limit(cls: ComplaintClass, days: int, due: datetime) -> None:
    c = complaint(cls)

    assert c.resolution_limit_days == days and c.resolution_due == due
    assert c.first_response_limit_days == 3 and c.first_response_due == wib(6, 16)


def test_a_local_sop_may_shorten_the_first_response_limit() -> None:
    assert complaint(first_response_limit_days=2).first_response_due == wib(5, 16)


def test_an_anonymous_complaint_keeps_no_reference_and_no_contact() -> None:
    c = complaint(anonymous=True)

    assert c.complainant_ref is None and c.contact is None


def test_respond_then_resolve_and_which_limits_were_met() -> None:
    c = complaint()
    c.respond(officer="o", text="Kami periksa", at=wib(6, 16, 30))
    first = c.resolve(officer="s", outcome=ComplaintOutcome.UPHELD, text="Diperbaiki", at=wib(10, 15))

    assert first is False and c.state is ComplaintState.RESOLVED
    assert c.response_within_limit() is False and c.resolution_within_limit() is True
    with pytest.raises(WrongState):
        c.respond(officer="o", text="lagi", at=wib(11, 9))
    with pytest.raises(WrongState):
        c.resolve(officer="s", outcome=ComplaintOutcome.UPHELD, text="lagi", at=wib(11, 9))


def test_resolving_at_once_is_also_the_first_response() -> None:
    c = complaint(ComplaintClass.INFORMATION_REQUEST)

    assert c.resolve(officer="s", outcome=ComplaintOutcome.INFORMATION_GIVEN, text="Info", at=wib(3, 11))
    assert c.responded_at == c.resolved_at == wib(3, 11) and c.response == "Info"


def test_overdue_names_the_limits_passed() -> None:
    c = complaint()

    assert c.overdue(wib(6, 16)) == []
    assert c.overdue(wib(6, 16, 1)) == ["first_response"]
    assert c.overdue(wib(10, 16, 1)) == ["first_response", "resolution"]
    c.respond(officer="o", text="t", at=wib(10, 16, 2))
    assert c.overdue(wib(10, 16, 3)) == ["resolution"]


def test_tracking_codes_are_random_and_readable() -> None:
    codes = {new_tracking_code() for _ in range(200)}

    assert len(codes) == 200
    assert all(c.startswith("ADU-") and len(c) == 12 and not set(c[4:]) & set("01IO") for c in codes)


# --- durations and visit end (the fixes the busy morning found) -------------------------------


def test_spans_with_fractional_instants_add_up_to_the_total() -> None:
    issued = datetime(2026, 11, 3, 2, 0, 0, 500_000, tzinfo=UTC)
    called = issued + timedelta(seconds=0.7)
    started = called + timedelta(seconds=1.7)
    done = started + timedelta(seconds=1.1)

    parts = seconds(issued, called) + seconds(called, started) + seconds(started, done)

    assert parts == seconds(issued, done) == 4


def test_a_visit_ends_when_its_last_ticket_finished() -> None:
    t0 = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    visit = Visit(id="v", site="s", channel=Channel.WALK_IN, started_at=t0)
    tickets = []
    for n, finished in enumerate((t0 + timedelta(minutes=5), t0 + timedelta(minutes=7))):
        t = Ticket(
            id=f"t{n}",
            visit_id="v",
            site="s",
            agency="a",
            service_type="x",
            prefix="A",
            day="2026-11-03",
            seq=n + 1,
            priority_group=PriorityGroup.NONE,
            channel=visit.channel,
            issued_at=t0,
            queued_at=t0,
            rank=0,
            state=TicketState.COMPLETED,
            finished_at=finished,
        )
        tickets.append(t)

    assert visit.end_if_done(tickets, t0 + timedelta(minutes=5))
    assert visit.ended_at == t0 + timedelta(minutes=7) and visit.tickets_served == 2
