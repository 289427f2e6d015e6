"""Quiet hours, consent and the choice of channels."""

from __future__ import annotations

from datetime import UTC, datetime, time

from mpp.contracts.events.notification import DeliveryFailure, MessageKind, NotificationChannel
from mpp.notification.domain.model import Contact, plan_channels
from mpp.notification.domain.rules import QuietHours, Recipient, Trigger

W, S, E = NotificationChannel.WHATSAPP, NotificationChannel.SMS, NotificationChannel.EMAIL
NIGHT = QuietHours(start=time(21), end=time(7), timezone="Asia/Jakarta")


def test_outside_quiet_hours_a_message_goes_at_once() -> None:
    noon_wib = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert NIGHT.release_at(noon_wib) == noon_wib


def test_in_the_evening_a_message_waits_until_the_next_morning() -> None:
    at = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 22:30 WIB
    assert NIGHT.release_at(at) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 07:00 WIB


def test_after_midnight_a_message_waits_until_the_same_morning() -> None:
    at = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # 02:00 WIB on the 3rd
    assert NIGHT.release_at(at) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(start=time(12), end=time(13), timezone="Asia/Makassar")
    at = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)  # 12:30 WITA
    assert lunch.release_at(at) == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


def _trigger(*, critical: bool, channels: tuple[NotificationChannel, ...] = (W, S, E)) -> Trigger:
    kind = MessageKind.APPLICATION_RETURNED if critical else MessageKind.SERVICE_INFORMATION
    return Trigger(
        event_type="ApplicationReturned",
        message_kind=kind,
        recipient=Recipient(field="applicant_ref"),
        channels=channels,
        critical=critical,
        template="application_returned",
    )


def _contact(**changes: object) -> Contact:
    values: dict[str, object] = {
        "citizen_ref": "c_0123456789abcdef",
        "phone": "+6281234567890",
        "email": "warga@example.id",
        "whatsapp": True,
        "preferred_channel": S,
        "optional_consent": False,
        "consent_recorded_at": datetime(2026, 1, 1, tzinfo=UTC),
        "source": "self",
    }
    values.update(changes)
    return Contact(**values)  # type: ignore[arg-type]


def test_critical_messages_go_out_despite_an_opt_out_with_the_preferred_channel_first() -> None:
    plan = plan_channels(_trigger(critical=True), _contact(optional_consent=False))
    assert plan.refused is None and plan.channels == (S, W, E)


def test_optional_messages_need_consent() -> None:
    assert plan_channels(_trigger(critical=False), _contact()).refused is DeliveryFailure.NO_CONSENT
    assert plan_channels(_trigger(critical=False), _contact(optional_consent=True)).channels == (S, W, E)


def test_only_reachable_channels_are_planned() -> None:
    plan = plan_channels(_trigger(critical=True), _contact(whatsapp=False, email=None))
    assert plan.channels == (S,)
    none = plan_channels(_trigger(critical=True, channels=(E,)), _contact(email=None))
    assert none.refused is DeliveryFailure.NO_CONTACT
    assert plan_channels(_trigger(critical=True), None).refused is DeliveryFailure.NO_CONTACT
