"""The queue order the notification service derives from ticket events, and the choice of tickets to
tell that their number is almost called."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mpp.contracts.events.common import PriorityGroup
from mpp.notification.app import DEFAULT_TRIGGERS
from mpp.notification.domain.almost import WaitingTicket, queue_rank, to_alert, transfer_credit
from mpp.notification.domain.rules import DEFAULT_HEAD_START_MINUTES, ConfigError, parse_trigger_config

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
HEAD = DEFAULT_HEAD_START_MINUTES


def minute(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def ticket(
    name: str, m: float, group: PriorityGroup = PriorityGroup.NONE, *, alerted: bool = False
) -> WaitingTicket:
    return WaitingTicket(name, queue_rank(minute(m), group, HEAD), minute(m), alerted)


def test_a_priority_group_ranks_as_a_regular_ticket_issued_its_head_start_earlier() -> None:
    elderly = queue_rank(minute(40), PriorityGroup.LANSIA, HEAD)
    assert elderly == queue_rank(minute(10), PriorityGroup.NONE, HEAD)
    assert queue_rank(minute(40), PriorityGroup.ANAK, HEAD) == queue_rank(
        minute(25), PriorityGroup.NONE, HEAD
    )


def test_a_transfer_brings_the_time_waited_in_the_first_queue_up_to_the_cap() -> None:
    assert transfer_credit(minute(0), minute(6), 15) == 360.0
    assert transfer_credit(minute(0), minute(40), 15) == 900.0
    assert transfer_credit(None, minute(40), 15) == 0.0
    assert queue_rank(minute(20), PriorityGroup.NONE, HEAD, transfer_credit_s=600) == queue_rank(
        minute(10), PriorityGroup.NONE, HEAD
    )


def test_tickets_within_reach_are_told_once_with_how_many_are_ahead() -> None:
    waiting = [ticket("a", 1), ticket("b", 2, alerted=True), ticket("c", 3), ticket("d", 4), ticket("e", 5)]
    assert [(t.ticket_id, ahead) for t, ahead in to_alert(waiting, 2)] == [("a", 0), ("c", 2)]
    assert to_alert(waiting, 0) == [(waiting[0], 0)]


def test_a_priority_ticket_issued_later_is_ahead_and_equal_ranks_keep_arrival_order() -> None:
    waiting = [ticket("late-regular", 10), ticket("elderly", 34, PriorityGroup.LANSIA), ticket("early", 5)]
    assert [t.ticket_id for t, _ in to_alert(waiting, 5)] == ["elderly", "early", "late-regular"]
    tie = [ticket("second", 10), ticket("first", 40, PriorityGroup.LANSIA)]
    # Equal rank: the earlier issue wins (the regular ticket was issued first).
    assert [t.ticket_id for t, _ in to_alert(tie, 1)] == ["second", "first"]


def _config(**almost: object) -> str:
    document = json.loads(DEFAULT_TRIGGERS.read_text(encoding="utf-8"))
    document["almost_called"].update(almost)
    return json.dumps(document)


def test_the_packaged_configuration_tells_three_tickets_ahead_on_whatsapp_then_sms() -> None:
    config = parse_trigger_config(DEFAULT_TRIGGERS.read_text(encoding="utf-8"))
    assert config.almost_called is not None
    assert config.almost_called.tickets_ahead == 3
    assert [c.value for c in config.almost_called.channels] == ["whatsapp", "sms"]
    assert {"TicketCancelled", "TicketNoShow", "TicketTransferred"} <= config.event_types


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"tickets_ahead": -1}, "almost_called.tickets_ahead"),
        ({"link": "appointmentx"}, "no link of kind 'appointmentx'"),
        ({"head_start_minutes": {"lansia": -5}}, "a head start cannot be negative"),
        ({"message_kind": "survey_invitation"}, "optional and cannot be critical"),
        ({"head_start_minutes": {"vip": 5}}, "almost_called.head_start_minutes.vip"),
    ],
)
def test_a_bad_almost_called_section_stops_the_service_with_where(
    change: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_trigger_config(_config(**change), source="triggers.json")
    assert problem in str(raised.value)


def test_without_the_section_queue_events_other_than_triggers_are_not_consumed() -> None:
    document = json.loads(DEFAULT_TRIGGERS.read_text(encoding="utf-8"))
    del document["almost_called"]
    config = parse_trigger_config(json.dumps(document))
    assert config.almost_called is None
    assert "TicketCancelled" not in config.event_types
