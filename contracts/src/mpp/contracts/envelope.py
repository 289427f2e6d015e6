"""The one event envelope shared by every MPP service, and the registry of event payloads.

An event on the wire is an :class:`Envelope` (metadata) around a frozen :class:`EventPayload`.
Payload classes are registered by ``(type, version)``; a published class is never edited in place:
a breaking change becomes a new class with a new version.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

PERSONAL_DATA_KEY = "x-personal-data"
"""JSON Schema marker on payload fields that hold personal data (UU 27/2022 PDP)."""


def personal(description: str, **kwargs: Any) -> Any:
    """A payload field that holds personal data; it is marked in the generated JSON Schema."""
    return Field(description=description, json_schema_extra={PERSONAL_DATA_KEY: True}, **kwargs)


class EventPayload(BaseModel):
    """Base of every event payload: immutable, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    topic: ClassVar[str]
    domain: ClassVar[str]


P = TypeVar("P", bound=EventPayload)


class UnknownEventType(LookupError):
    """No payload class is registered for this (type, version)."""


_REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}


def event(event_type: str, version: int, *, topic: str, domain: str) -> Callable[[type[P]], type[P]]:
    """Register a payload class under ``(event_type, version)`` and bind it to its topic."""

    def register(cls: type[P]) -> type[P]:
        key = (event_type, version)
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"event {event_type} v{version} is registered twice")
        cls.event_type = event_type
        cls.event_version = version
        cls.topic = topic
        cls.domain = domain
        _REGISTRY[key] = cls
        return cls

    return register


def payload_class(event_type: str, version: int) -> type[EventPayload]:
    """The payload class for ``(event_type, version)``; raises :class:`UnknownEventType`."""
    try:
        return _REGISTRY[(event_type, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r} version {version}") from None


def registered_events(*, include_external: bool = False) -> list[type[EventPayload]]:
    """The catalogue: payload classes defined in this package, sorted by domain, type and version.

    Classes registered by other packages (an agency's own events, test events) are parsed like the
    rest but belong to the published catalogue only with ``include_external=True``.
    """
    classes = [c for c in _REGISTRY.values() if include_external or c.__module__.startswith("mpp.contracts.")]
    return sorted(classes, key=lambda c: (c.domain, c.event_type, c.event_version))


def new_event_id() -> uuid.UUID:
    """A new event id: a UUID of version 7 (RFC 9562), the creation time in milliseconds followed by 74
    random bits. Ids made later sort later, in their text form too, so the inboxes and outboxes that key
    on them add each batch's ids near the end of their index rather than all over it."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    return uuid.UUID(int=value & _NOT_VERSION_VARIANT | _VERSION_7_VARIANT)


_NOT_VERSION_VARIANT = ~(0xF << 76 | 0x3 << 62)
_VERSION_7_VARIANT = 0x7 << 76 | 0x2 << 62


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Metadata around one event payload (CloudEvents attributes plus MPP extensions).

    In its structured JSON form the payload is parsed into the class registered for
    ``(type, version)``; on Kafka the attributes travel as ``ce_*`` headers (see ``mpp.contracts.kafka``).
    """

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(
        default_factory=new_event_id,
        description="Unique event id (producers make version 7 UUIDs, ordered by time); consumers deduplicate on it.",
    )
    type: str = Field(description="Event type, e.g. ApplicationSubmitted.")
    version: int = Field(ge=1, description="Payload schema version.")
    occurred_at: AwareDatetime = Field(default_factory=utcnow, description="When it happened (UTC).")
    producer: str = Field(min_length=1, description="Producing service, e.g. mpp.licensing.")
    agency: str = Field(min_length=1, description="Agency (tenant) code the event belongs to.")
    site: str = Field(min_length=1, description="MPP site code.")
    subject: str = Field(min_length=1, description="Id of the aggregate the event is about; the Kafka key.")
    correlation_id: str = Field(min_length=1, description="Id shared by every event of one citizen request.")
    causation_id: str | None = Field(
        default=None, description="Id of the event or request that caused this one."
    )
    traceparent: str | None = Field(default=None, description="W3C trace context of the producing span.")
    payload: SerializeAsAny[EventPayload]

    @model_validator(mode="before")
    @classmethod
    def _parse_payload(cls, data: Any) -> Any:
        if isinstance(data, dict):
            raw = data.get("payload")
            if isinstance(raw, dict | str | bytes):
                klass = payload_class(str(data.get("type")), int(data.get("version", 0)))
                data = dict(data)
                data["payload"] = (
                    klass.model_validate(raw) if isinstance(raw, dict) else klass.model_validate_json(raw)
                )
        return data

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        producer: str,
        agency: str,
        site: str,
        subject: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """Build an envelope whose type and version come from the payload's class."""
        eid = event_id or new_event_id()
        return cls(
            id=eid,
            type=payload.event_type,
            version=payload.event_version,
            occurred_at=occurred_at or utcnow(),
            producer=producer,
            agency=agency,
            site=site,
            subject=subject,
            correlation_id=correlation_id or str(eid),
            causation_id=causation_id,
            traceparent=traceparent,
            payload=payload,
        )

    @property
    def topic(self) -> str:
        return self.payload.topic


_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
_new_envelope = object.__new__
_set = object.__setattr__


def checked_envelope(fields: dict[str, Any]) -> Envelope:
    """An :class:`Envelope` of attribute values the caller has already checked against every constraint
    of the model (types, non-empty codes, an aware ``occurred_at`` in UTC, a payload instance of the
    registered class), built without validating them a second time: equal in every respect to
    ``Envelope(**fields)``. Reading an event from Kafka (:func:`mpp.contracts.kafka.from_record`) checks
    the values itself and builds envelopes by the hundred thousand, for which validating again would
    cost a third of the parse."""
    env = _new_envelope(Envelope)
    _set(env, "__dict__", fields)
    _set(env, "__pydantic_fields_set__", set(_ENVELOPE_FIELDS))
    _set(env, "__pydantic_extra__", None)
    _set(env, "__pydantic_private__", None)
    return env
