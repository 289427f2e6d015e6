"""Event contracts of the Mal Pelayanan Publik (MPP) platform.

Agency teams install this package on its own (its only dependency is pydantic) and code against it:
the envelope, the event catalogue, the topic registry, the CloudEvents Kafka binding and the
service-catalogue master data.
"""

from mpp.contracts import events
from mpp.contracts.envelope import (
    PERSONAL_DATA_KEY,
    Envelope,
    EventPayload,
    UnknownEventType,
    new_event_id,
    payload_class,
    registered_events,
)
from mpp.contracts.kafka import MalformedEvent, from_record, to_record

__all__ = [
    "PERSONAL_DATA_KEY",
    "Envelope",
    "EventPayload",
    "MalformedEvent",
    "UnknownEventType",
    "events",
    "from_record",
    "new_event_id",
    "payload_class",
    "registered_events",
    "to_record",
]
