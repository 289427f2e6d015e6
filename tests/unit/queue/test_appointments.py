"""Appointment slots from the site calendar, the check-in window, the missed rule and the merge rank."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.events.common import PriorityGroup
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.queue.api.appointments import own_citizen_ref
from mpp.queue.domain.appointments import (
    BOOKING_ALPHABET,
    Appointment,
    AppointmentRules,
    AppointmentState,
    OutsideCheckinWindow,
    Rulebook,
    checkin_window,
    day_slots,
    find_slot,
    merge_queued_at,
    new_booking_code,
)
from mpp.queue.domain.model import WrongState
from mpp.queue.domain.policy import OrderingPolicy

pytestmark = pytest.mark.unit

CATALOGUE = load_demo_catalogue()
CALENDAR = CATALOGUE.site_calendar("mpp-kota-sukamaju")
WIB = ZoneInfo("Asia/Jakarta")
RULES = AppointmentRules(slot_minutes=30, quota_per_slot=4)


def local(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), tzinfo=WIB)


def starts(d: date, rules: AppointmentRules = RULES) -> list[str]:
    return [s.start.strftime("%H:%M") for s in day_slots(CALENDAR, d, WIB, rules)]


class TestSlots:
    def test_a_working_day_has_slots_inside_opening_hours_without_the_break(self) -> None:
        tuesday = date(2026, 11, 3)

        got = starts(tuesday)

        assert got[0] == "08:00" and got[-1] == "15:30"
        assert "11:30" in got and "12:00" not in got and "12:30" not in got and "13:00" in got
        assert len(got) == 14  # 8 before the break, 6 after

    def test_a_slot_that_would_run_into_the_break_or_closing_is_not_offered(self) -> None:
        friday = date(2026, 11, 6)  # break 11:30-13:00
        rules = AppointmentRules(slot_minutes=45)

        got = starts(friday, rules)

        # 08:00 08:45 09:30 10:15 (11:00 would end 11:45, in the break); 13:00 13:45 14:30 (15:15 ends 16:00)
        assert got == ["08:00", "08:45", "09:30", "10:15", "13:00", "13:45", "14:30", "15:15"]
        assert all(s.end <= local(friday, 16) for s in day_slots(CALENDAR, friday, WIB, rules))

    def test_sunday_has_no_slots_and_a_saturday_opening_has_morning_slots(self) -> None:
        assert starts(date(2026, 11, 8)) == []
        assert starts(date(2026, 11, 7)) == [
            "08:00",
            "08:30",
            "09:00",
            "09:30",
            "10:00",
            "10:30",
            "11:00",
            "11:30",
        ]

    def test_working_days_only_leaves_the_saturday_opening_out(self) -> None:
        assert starts(date(2026, 11, 7), AppointmentRules(working_days_only=True)) == []
        assert starts(date(2026, 11, 6), AppointmentRules(working_days_only=True)) != []

    @pytest.mark.parametrize(
        "holiday",
        [date(2026, 12, 24), date(2026, 12, 25), date(2026, 8, 17), date(2026, 3, 23)],
        ids=["cuti bersama", "christmas", "independence day", "cuti bersama idulfitri"],
    )
    def test_holidays_and_cuti_bersama_have_no_slots(self, holiday: date) -> None:
        assert starts(holiday) == []
        assert starts(holiday - timedelta(days=7)) != []  # the same weekday a week earlier opens

    def test_special_hours_replace_the_weekly_hours(self) -> None:
        ramadan_monday = date(2026, 3, 2)

        got = starts(ramadan_monday, AppointmentRules(slot_minutes=60))

        assert got == ["08:00", "09:00", "10:00", "11:00", "12:00", "13:00"]

    def test_a_year_the_calendar_does_not_cover_has_no_slots(self) -> None:
        assert starts(date(2027, 1, 5)) == []

    def test_find_slot_accepts_only_exact_slot_starts_in_any_offset(self) -> None:
        tuesday = date(2026, 11, 3)

        assert find_slot(CALENDAR, WIB, RULES, datetime(2026, 11, 3, 2, 0, tzinfo=UTC)) is not None  # 09:00
        assert find_slot(CALENDAR, WIB, RULES, local(tuesday, 9, 10)) is None
        assert find_slot(CALENDAR, WIB, RULES, local(tuesday, 12, 0)) is None
        assert find_slot(CALENDAR, WIB, RULES, local(tuesday, 16, 0)) is None

    def test_rules_refuse_nonsense(self) -> None:
        with pytest.raises(ValueError):
            AppointmentRules(slot_minutes=0)
        with pytest.raises(ValueError):
            AppointmentRules(quota_per_slot=0)
        with pytest.raises(ValueError):
            AppointmentRules(quota_per_day=0)

    def test_the_rulebook_falls_back_to_its_default(self) -> None:
        skck = AppointmentRules(slot_minutes=15, checkin_late_minutes=5)
        book = Rulebook(RULES, {"polres.skck": skck})

        assert book.for_service("polres.skck") is skck
        assert book.for_service("disdukcapil.kk") is RULES
        assert book.shortest_late_minutes == 5


def appointment(slot_start: datetime) -> Appointment:
    return Appointment(
        id="apt-1",
        booking_code=new_booking_code(),
        site="mpp-kota-sukamaju",
        service_type="disdukcapil.kk",
        agency="disdukcapil",
        day=slot_start.date().isoformat(),
        slot_start=slot_start,
        slot_end=slot_start + timedelta(minutes=30),
        channel="online",
        citizen_ref="c0123456789abcdef",
        booker="citizen-1",
        booked_at=slot_start - timedelta(days=2),
    )


SLOT = local(date(2026, 11, 3), 10, 0)


class TestCheckInWindow:
    def test_the_window_is_30_minutes_before_to_15_after_by_default(self) -> None:
        opens, closes = checkin_window(SLOT, AppointmentRules())

        assert (opens, closes) == (SLOT - timedelta(minutes=30), SLOT + timedelta(minutes=15))

    @pytest.mark.parametrize("offset_minutes", [-30, -1, 0, 15])
    def test_check_in_inside_the_window_both_ends_included(self, offset_minutes: int) -> None:
        a = appointment(SLOT)

        a.check_in(at=SLOT + timedelta(minutes=offset_minutes), rules=RULES, visit_id="v", ticket_id="t")

        assert a.state is AppointmentState.CHECKED_IN

    @pytest.mark.parametrize(("offset_seconds", "early"), [(-30 * 60 - 1, True), (15 * 60 + 1, False)])
    def test_check_in_outside_the_window_is_refused(self, offset_seconds: int, early: bool) -> None:
        a = appointment(SLOT)

        with pytest.raises(OutsideCheckinWindow) as refused:
            a.check_in(at=SLOT + timedelta(seconds=offset_seconds), rules=RULES, visit_id="v", ticket_id="t")

        assert refused.value.early is early
        assert a.state is AppointmentState.BOOKED

    def test_a_configured_window_is_used(self) -> None:
        rules = AppointmentRules(checkin_early_minutes=10, checkin_late_minutes=5)
        a = appointment(SLOT)

        with pytest.raises(OutsideCheckinWindow):
            a.ensure_checkin_open(SLOT - timedelta(minutes=11), rules)
        a.ensure_checkin_open(SLOT + timedelta(minutes=5), rules)

    def test_missed_only_after_the_window_closed(self) -> None:
        a = appointment(SLOT)

        assert not a.miss(at=SLOT + timedelta(minutes=15), rules=RULES)
        assert a.miss(at=SLOT + timedelta(minutes=15, seconds=1), rules=RULES)
        assert a.state is AppointmentState.MISSED
        assert not a.miss(at=SLOT + timedelta(hours=1), rules=RULES)

    def test_cancel_only_before_the_slot_starts_and_only_once(self) -> None:
        late = appointment(SLOT)
        with pytest.raises(WrongState):
            late.cancel(by="citizen", at=SLOT)

        a = appointment(SLOT)
        a.cancel(by="citizen", at=SLOT - timedelta(seconds=1))
        assert a.state is AppointmentState.CANCELLED
        with pytest.raises(WrongState):
            a.cancel(by="officer", at=SLOT - timedelta(seconds=1))
        with pytest.raises(WrongState):
            a.check_in(at=SLOT, rules=RULES, visit_id="v", ticket_id="t")


class TestMergeRank:
    POLICY = OrderingPolicy()

    def test_the_ticket_ranks_as_if_issued_at_the_slot_start_early_or_late(self) -> None:
        for offset in (-25, 0, 10):
            queued = merge_queued_at(SLOT, SLOT + timedelta(minutes=offset))
            assert queued == SLOT

    def test_walk_ins_before_the_slot_go_first_and_those_after_it_go_after(self) -> None:
        rank = self.POLICY.rank(PriorityGroup.NONE, merge_queued_at(SLOT, SLOT + timedelta(minutes=10)))
        walk_in_before = self.POLICY.rank(PriorityGroup.NONE, SLOT - timedelta(minutes=1))
        walk_in_after = self.POLICY.rank(PriorityGroup.NONE, SLOT + timedelta(minutes=1))

        assert walk_in_before < rank < walk_in_after

    def test_a_declared_priority_group_keeps_its_head_start(self) -> None:
        plain = self.POLICY.rank(PriorityGroup.NONE, merge_queued_at(SLOT, SLOT))
        elderly = self.POLICY.rank(PriorityGroup.LANSIA, merge_queued_at(SLOT, SLOT))

        assert plain - elderly == self.POLICY.head_start_ms(PriorityGroup.LANSIA)


def test_booking_codes_use_the_unambiguous_alphabet() -> None:
    codes = {new_booking_code() for _ in range(200)}

    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(BOOKING_ALPHABET) for c in codes)


def test_a_citizens_own_reference_is_a_keyed_pseudonym() -> None:
    ref = own_citizen_ref("citizen-subject-1", b"key-a")

    assert ref == own_citizen_ref("citizen-subject-1", b"key-a")
    assert ref != own_citizen_ref("citizen-subject-1", b"key-b")
    assert ref != own_citizen_ref("citizen-subject-2", b"key-a")
    assert "citizen-subject-1" not in ref
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", ref)
