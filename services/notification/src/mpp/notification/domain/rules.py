"""What the service sends, as configuration: triggers (event type -> message), links and quiet hours.

The configuration is a JSON document validated at startup; a bad document stops the service with a
message naming the problem. Shape::

    {
      "links": [{"event_type": "VisitStarted", "kind": "visit", "key_field": "visit_id",
                 "citizen_field": "citizen_ref"}],
      "triggers": [{"event_type": "TicketCalled", "message_kind": "ticket_called",
                    "recipient": {"link": "visit", "key_field": "visit_id"},
                    "channels": ["whatsapp", "sms"], "critical": true, "urgent": true,
                    "template": "ticket_called"}],
      "quiet_hours": {"default": {"start": "21:00", "end": "07:00", "timezone": "Asia/Jakarta"},
                      "sites": {"mpp-kota-sukamaju": {...}}},
      "almost_called": {"tickets_ahead": 3, "channels": ["whatsapp", "sms"],
                        "head_start_minutes": {"lansia": 30, "anak": 15}, "transfer_credit_minutes": 15}
    }

A recipient is named by a field of the trigger event (``{"field": "applicant_ref"}``) or, for events
that name no citizen (a ticket call names a visit), through a link recorded from an earlier event
(the visit's ``VisitStarted`` names the citizen).

``critical`` messages are sent whatever the citizen's consent to optional messages; the others need it.
``urgent`` messages go out at once; the others wait for the end of the site's quiet hours.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mpp.contracts.envelope import registered_events
from mpp.contracts.events.common import PriorityGroup
from mpp.contracts.events.notification import MessageKind, NotificationChannel

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class ConfigError(ValueError):
    """The trigger configuration is not usable; the message says what is wrong and where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkRule(_Strict):
    """Remember which citizen an aggregate belongs to, from an event that names both."""

    event_type: str
    kind: Name
    key_field: Name
    citizen_field: Name


class Recipient(_Strict):
    field: Name | None = None
    link: Name | None = None
    key_field: Name | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.field is None) == (self.link is None):
            raise ValueError("a recipient is either a field of the event or a link, not both or neither")
        if self.link is not None and self.key_field is None:
            raise ValueError("a linked recipient needs the key_field that holds the linked id")
        return self


class Trigger(_Strict):
    event_type: str
    message_kind: MessageKind
    recipient: Recipient
    channels: tuple[NotificationChannel, ...] = Field(min_length=1)
    critical: bool
    urgent: bool = False
    template: Name

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: tuple[NotificationChannel, ...]) -> tuple[NotificationChannel, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @model_validator(mode="after")
    def _optional_kinds_are_not_critical(self) -> Self:
        if self.critical and self.message_kind.optional:
            raise ValueError(f"{self.message_kind.value} is an optional message and cannot be critical")
        return self


# The queue's default ordering policy: weight / ageing per minute = minutes of head start.
DEFAULT_HEAD_START_MINUTES: dict[PriorityGroup, float] = {
    PriorityGroup.LANSIA: 30.0,
    PriorityGroup.DISABILITAS: 30.0,
    PriorityGroup.IBU_HAMIL: 30.0,
    PriorityGroup.ANAK: 15.0,
    PriorityGroup.KORBAN_BENCANA: 30.0,
}


class AlmostCalled(_Strict):
    """ "Your number is almost called", derived from the queue's events (see ``domain/almost.py``):
    after a call, tickets with at most ``tickets_ahead`` tickets before them in their queue (site,
    service type, day) get the message once, if their visit names a citizen with contact details."""

    tickets_ahead: int = Field(ge=0, le=100)
    message_kind: MessageKind = MessageKind.TICKET_ALMOST_CALLED
    link: Name = "visit"
    channels: tuple[NotificationChannel, ...] = Field(min_length=1)
    critical: bool = True
    urgent: bool = True
    template: Name = "ticket_almost_called"
    head_start_minutes: dict[PriorityGroup, float] = Field(
        default_factory=lambda: dict(DEFAULT_HEAD_START_MINUTES)
    )
    transfer_credit_minutes: float = Field(default=15.0, ge=0)

    @field_validator("head_start_minutes")
    @classmethod
    def _not_negative(cls, value: dict[PriorityGroup, float]) -> dict[PriorityGroup, float]:
        if any(v < 0 for v in value.values()):
            raise ValueError("a head start cannot be negative")
        return value

    @property
    def trigger(self) -> Trigger:
        """The message as a trigger of ``TicketCalled`` (the call that brings the ticket within reach)."""
        return Trigger(
            event_type="TicketCalled",
            message_kind=self.message_kind,
            recipient=Recipient(link=self.link, key_field="visit_id"),
            channels=self.channels,
            critical=self.critical,
            urgent=self.urgent,
            template=self.template,
        )


QUEUE_TRACKED_EVENTS = frozenset(
    {"TicketIssued", "TicketCalled", "TicketCancelled", "TicketNoShow", "TicketTransferred"}
)


class QuietHours(_Strict):
    start: time
    end: time
    timezone: str = "Asia/Jakarta"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def release_at(self, at: datetime) -> datetime:
        """``at`` itself outside quiet hours, else the end of the quiet period that contains it."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        now, start, end = local.time(), self.start, self.end
        if start == end:
            return at
        if start < end:
            quiet = start <= now < end
            end_day = local.date()
        else:  # wraps midnight, e.g. 21:00-07:00
            quiet = now >= start or now < end
            end_day = local.date() + timedelta(days=1) if now >= start else local.date()
        if not quiet:
            return at
        return datetime.combine(end_day, end, tzinfo=zone).astimezone(at.tzinfo)


class QuietHoursConfig(_Strict):
    default: QuietHours | None = None
    sites: dict[str, QuietHours] = Field(default_factory=dict)

    def for_site(self, site: str) -> QuietHours | None:
        return self.sites.get(site, self.default)


class TriggerConfig(_Strict):
    links: tuple[LinkRule, ...] = ()
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    quiet_hours: QuietHoursConfig = QuietHoursConfig()
    almost_called: AlmostCalled | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        known = {cls.event_type: cls for cls in registered_events()}
        seen: set[str] = set()
        for t in self.triggers:
            if t.event_type not in known:
                raise ValueError(f"trigger for unknown event type {t.event_type!r}")
            if t.event_type in seen:
                raise ValueError(f"event type {t.event_type} has two triggers")
            seen.add(t.event_type)
            fields = known[t.event_type].model_fields
            if t.recipient.field is not None and t.recipient.field not in fields:
                raise ValueError(f"trigger {t.event_type}: the event has no field {t.recipient.field!r}")
            if t.recipient.link is not None:
                if t.recipient.key_field not in fields:
                    raise ValueError(
                        f"trigger {t.event_type}: the event has no field {t.recipient.key_field!r}"
                    )
                if t.recipient.link not in {link.kind for link in self.links}:
                    raise ValueError(
                        f"trigger {t.event_type}: no link of kind {t.recipient.link!r} is configured"
                    )
        for link in self.links:
            if link.event_type not in known:
                raise ValueError(f"link from unknown event type {link.event_type!r}")
            fields = known[link.event_type].model_fields
            for name in (link.key_field, link.citizen_field):
                if name not in fields:
                    raise ValueError(f"link {link.kind}: {link.event_type} has no field {name!r}")
        return self

    @model_validator(mode="after")
    def _almost_called_fits(self) -> Self:
        almost = self.almost_called
        if almost is None:
            return self
        if almost.critical and almost.message_kind.optional:
            raise ValueError(f"almost_called: {almost.message_kind.value} is optional and cannot be critical")
        if almost.link not in {link.kind for link in self.links}:
            raise ValueError(f"almost_called: no link of kind {almost.link!r} is configured")
        return self

    def trigger(self, event_type: str) -> Trigger | None:
        for t in self.triggers:
            if t.event_type == event_type:
                return t
        return None

    def links_from(self, event_type: str) -> list[LinkRule]:
        return [link for link in self.links if link.event_type == event_type]

    @property
    def event_types(self) -> frozenset[str]:
        tracked = QUEUE_TRACKED_EVENTS if self.almost_called is not None else frozenset()
        return (
            frozenset(t.event_type for t in self.triggers)
            | {link.event_type for link in self.links}
            | tracked
        )


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "document"


def parse_trigger_config(text: str, *, source: str = "trigger configuration") -> TriggerConfig:
    """The validated configuration; :class:`ConfigError` names the problem and where it is."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return TriggerConfig.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None
