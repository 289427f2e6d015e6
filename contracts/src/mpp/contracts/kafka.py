"""CloudEvents Kafka protocol binding, binary content mode.

The record value is the JSON payload document; every envelope attribute travels as a ``ce_*``
header, the trace context as the W3C ``traceparent`` header, and the record key is the subject
(the aggregate id), so one entity's events stay ordered within a partition.
This module is pure: it turns envelopes into ``(key, value, headers)`` and back, without a client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from mpp.contracts.envelope import Envelope, UnknownEventType, checked_envelope, payload_class

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


class MalformedEvent(ValueError):
    """A record that cannot be read as an event: missing headers, bad JSON or an invalid payload."""


def to_record(envelope: Envelope) -> tuple[bytes, bytes, Headers]:
    """The Kafka ``(key, value, headers)`` of an envelope in CloudEvents binary mode."""
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(envelope.id).encode()),
        ("ce_source", envelope.producer.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_time", envelope.occurred_at.isoformat().encode()),
        ("ce_subject", envelope.subject.encode()),
        ("ce_dataschema", f"{envelope.type}.v{envelope.version}".encode()),
        ("ce_eventversion", str(envelope.version).encode()),
        ("ce_agency", envelope.agency.encode()),
        ("ce_site", envelope.site.encode()),
        ("ce_correlationid", envelope.correlation_id.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if envelope.causation_id is not None:
        headers.append(("ce_causationid", envelope.causation_id.encode()))
    if envelope.traceparent is not None:
        headers.append(("traceparent", envelope.traceparent.encode()))
    return envelope.subject.encode(), envelope.payload.model_dump_json().encode(), headers


def header_map(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Headers as a dict of text values (the last value wins)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers}


def from_record(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> Envelope:
    """Read a binary-mode record back into an envelope.

    Raises :class:`UnknownEventType` for a type/version this catalogue does not know and
    :class:`MalformedEvent` for anything else that is not a valid event.
    """
    if not isinstance(headers, list | tuple):
        headers = list(headers)
    envelope = _direct(value, headers)
    return envelope if envelope is not None else _validated(value, headers)


_TEXT_HEADERS = (
    "ce_type",
    "ce_id",
    "ce_time",
    "ce_source",
    "ce_agency",
    "ce_site",
    "ce_subject",
    "ce_correlationid",
)
_OPTIONAL_HEADERS = ("ce_causationid", "traceparent")
_event_id = TypeAdapter(uuid.UUID).validator.validate_python
"""An id header read by pydantic-core: a fifth of ``uuid.UUID``'s time, and the same value. It takes
hyphens only where the canonical form has them (``uuid.UUID`` takes them anywhere): such an id is left
to :func:`_validated`. Its error is a ``ValueError``."""


def _direct(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> Envelope | None:
    """The envelope of a record that is a valid event, read with one validation (the payload's, from the
    record's bytes): the envelope's attributes are checked here against the model's constraints (present
    and non-empty, UTF-8, an id, an aware time turned to UTC, a registered type and version) rather than
    validated by the model again. Anything else answers none, and :func:`_validated` reads the record
    and names what is wrong with it exactly as it always has."""
    raw = dict(headers)
    try:
        event_type, id_text, time_text, producer, agency, site, subject, correlation = [
            (raw[k] or b"").decode() for k in _TEXT_HEADERS
        ]
        version = int(raw["ce_eventversion"] or b"")
        event_id = _event_id(id_text)
        occurred_at = datetime.fromisoformat(time_text)
        causation, traceparent = [(raw[k] or b"").decode() if k in raw else None for k in _OPTIONAL_HEADERS]
        klass = payload_class(event_type, version)
    except (KeyError, ValueError, UnknownEventType):  # UnicodeDecodeError is a ValueError
        return None
    if (
        value is None
        or version < 1
        or occurred_at.utcoffset() is None
        or not (producer and agency and site and subject and correlation)
    ):
        return None
    try:
        payload = klass.__pydantic_validator__.validate_json(value)
    except ValidationError:
        return None
    return checked_envelope(
        {
            "id": event_id,
            "type": event_type,
            "version": version,
            "occurred_at": occurred_at if occurred_at.tzinfo is UTC else occurred_at.astimezone(UTC),
            "producer": producer,
            "agency": agency,
            "site": site,
            "subject": subject,
            "correlation_id": correlation,
            "causation_id": causation,
            "traceparent": traceparent,
            "payload": payload,
        }
    )


def _validated(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> Envelope:
    """:func:`from_record` step by step, every attribute through the model's validation: the path of
    records the direct one does not take, and the one whose errors name what is wrong."""
    h = header_map(headers)
    try:
        event_type = h["ce_type"]
        version = int(h["ce_eventversion"])
        event_id = uuid.UUID(h["ce_id"])
        occurred_at = datetime.fromisoformat(h["ce_time"])
        attrs = {
            "producer": h["ce_source"],
            "agency": h["ce_agency"],
            "site": h["ce_site"],
            "subject": h["ce_subject"],
            "correlation_id": h["ce_correlationid"],
        }
    except (KeyError, ValueError) as exc:
        raise MalformedEvent(f"missing or invalid CloudEvents header: {exc}") from exc
    klass = payload_class(event_type, version)
    if value is None:
        raise MalformedEvent("record has no value")
    try:
        payload = klass.model_validate_json(value)
        return Envelope(
            id=event_id,
            type=event_type,
            version=version,
            occurred_at=occurred_at,
            causation_id=h.get("ce_causationid"),
            traceparent=h.get("traceparent"),
            payload=payload,
            **attrs,
        )
    except ValidationError as exc:
        raise MalformedEvent(_summarise(exc)) from exc


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid payload: " + "; ".join(parts)


__all__ = [
    "CONTENT_TYPE",
    "SPEC_VERSION",
    "Headers",
    "MalformedEvent",
    "UnknownEventType",
    "from_record",
    "header_map",
    "to_record",
]
