"""Every registered event survives the structured JSON form and the Kafka binding unchanged."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from mpp.contracts import (
    Envelope,
    EventPayload,
    MalformedEvent,
    UnknownEventType,
    from_record,
    registered_events,
    to_record,
)
from mpp.contracts.examples import example_envelope, example_payload, missing_examples
from mpp.contracts.kafka import header_map

pytestmark = pytest.mark.unit

EVENTS = registered_events()


def _id(cls: type[EventPayload]) -> str:
    return f"{cls.event_type}.v{cls.event_version}"


class TestExamples:
    def test_every_registered_event_has_an_example(self) -> None:
        assert missing_examples() == []

    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_example_payload_is_an_instance_of_its_class(self, cls: type[EventPayload]) -> None:
        assert type(example_payload(cls)) is cls

    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_example_envelope_carries_type_version_and_topic(self, cls: type[EventPayload]) -> None:
        envelope = example_envelope(cls)

        assert (envelope.type, envelope.version, envelope.topic) == (
            cls.event_type,
            cls.event_version,
            cls.topic,
        )

    def test_unknown_payload_class_has_no_example(self) -> None:
        class NotRegistered(EventPayload):
            """Only for this test."""

        with pytest.raises(LookupError, match="NotRegistered"):
            example_payload(NotRegistered)


class TestStructuredJson:
    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_round_trip_gives_an_equal_envelope(self, cls: type[EventPayload]) -> None:
        envelope = example_envelope(cls)

        assert Envelope.model_validate_json(envelope.model_dump_json()) == envelope

    def test_unknown_type_is_rejected(self) -> None:
        document = json.loads(example_envelope(EVENTS[0]).model_dump_json())
        document["type"] = "SomethingNobodyPublishes"

        with pytest.raises(UnknownEventType, match="SomethingNobodyPublishes"):
            Envelope.model_validate_json(json.dumps(document))

    def test_unknown_version_is_rejected(self) -> None:
        document = json.loads(example_envelope(EVENTS[0]).model_dump_json())
        document["version"] = 99

        with pytest.raises(UnknownEventType, match="version 99"):
            Envelope.model_validate_json(json.dumps(document))

    def test_malformed_payload_value_is_a_validation_error(self) -> None:
        document = json.loads(example_envelope(EVENTS[0]).model_dump_json())
        first_field = next(iter(document["payload"]))
        document["payload"][first_field] = {"not": "a valid value"}

        with pytest.raises(ValidationError):
            Envelope.model_validate_json(json.dumps(document))

    def test_unknown_payload_fields_are_ignored(self) -> None:
        envelope = example_envelope(EVENTS[0])
        document = json.loads(envelope.model_dump_json())
        document["payload"]["added_by_a_newer_producer"] = 1

        assert Envelope.model_validate_json(json.dumps(document)) == envelope


class TestKafkaBinding:
    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_round_trip_gives_an_equal_envelope(self, cls: type[EventPayload]) -> None:
        envelope = example_envelope(cls)
        _key, value, headers = to_record(envelope)

        assert from_record(value, headers) == envelope

    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_record_key_is_the_subject(self, cls: type[EventPayload]) -> None:
        envelope = example_envelope(cls)

        key, _value, headers = to_record(envelope)

        assert key == envelope.subject.encode()
        assert header_map(headers)["ce_subject"] == envelope.subject

    def test_unknown_type_is_rejected(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"SomethingNobodyPublishes" if k == "ce_type" else v) for k, v in headers]

        with pytest.raises(UnknownEventType):
            from_record(value, headers)

    def test_missing_header_is_malformed(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, v) for k, v in headers if k != "ce_id"]

        with pytest.raises(MalformedEvent, match="ce_id"):
            from_record(value, headers)

    def test_invalid_event_id_is_malformed(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"not-a-uuid" if k == "ce_id" else v) for k, v in headers]

        with pytest.raises(MalformedEvent):
            from_record(value, headers)

    def test_value_that_is_not_json_is_malformed(self) -> None:
        _key, _value, headers = to_record(example_envelope(EVENTS[0]))

        with pytest.raises(MalformedEvent, match="invalid payload"):
            from_record(b"{not json", headers)

    def test_payload_with_a_wrong_value_is_malformed(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        payload = json.loads(value)
        payload[next(iter(payload))] = [1, 2, 3]

        with pytest.raises(MalformedEvent, match="invalid payload"):
            from_record(json.dumps(payload).encode(), headers)

    @pytest.mark.parametrize(
        "header", ["ce_site", "ce_agency", "ce_source", "ce_subject", "ce_correlationid"]
    )
    def test_empty_envelope_attribute_is_malformed(self, header: str) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"" if k == header else v) for k, v in headers]

        with pytest.raises(MalformedEvent):
            from_record(value, headers)

    def test_event_time_without_a_time_zone_is_malformed(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"2026-03-02T08:00:00" if k == "ce_time" else v) for k, v in headers]

        with pytest.raises(MalformedEvent):
            from_record(value, headers)

    def test_event_time_is_read_as_utc(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"2026-03-02T08:00:00+07:00" if k == "ce_time" else v) for k, v in headers]

        occurred_at = from_record(value, headers).occurred_at

        assert occurred_at.utcoffset() == timedelta(0)
        assert occurred_at == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    def test_tombstone_without_value_is_malformed(self) -> None:
        _key, _value, headers = to_record(example_envelope(EVENTS[0]))

        with pytest.raises(MalformedEvent, match="no value"):
            from_record(None, headers)

    def test_event_id_survives_as_a_uuid(self) -> None:
        envelope = example_envelope(EVENTS[0])
        _key, value, headers = to_record(envelope)

        assert isinstance(from_record(value, headers).id, uuid.UUID)
