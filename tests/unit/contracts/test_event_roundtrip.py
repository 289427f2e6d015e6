"""Every registered event survives the structured JSON form and the Kafka binding unchanged."""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from mpp.contracts import (
    Envelope,
    EventPayload,
    MalformedEvent,
    UnknownEventType,
    from_record,
    kafka,
    new_event_id,
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


def _read_both(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> tuple[object, object]:
    """What the direct reading and the model-validated one make of a record: an envelope, or the type
    and text of the error."""
    outcomes: list[object] = []
    for read in (kafka._direct, kafka._validated):
        try:
            outcomes.append(read(value, headers))
        except (MalformedEvent, UnknownEventType) as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes[0], outcomes[1]


class TestDirectReading:
    """A valid record is read without validating the envelope twice; the result is the envelope the
    model's validation gives, and every other record is read (and rejected) as before."""

    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_a_valid_record_reads_directly_into_the_validated_envelope(self, cls: type[EventPayload]) -> None:
        envelope = example_envelope(cls)  # with a causation id and a traceparent
        _key, value, headers = to_record(envelope)

        direct, validated = _read_both(value, headers)

        assert isinstance(direct, Envelope)
        assert isinstance(validated, Envelope)
        assert direct == validated == envelope
        assert direct.model_dump() == validated.model_dump()
        assert direct.model_fields_set == validated.model_fields_set
        assert direct.model_dump_json() == validated.model_dump_json()
        assert direct.model_copy(update={"site": "mpp-lain"}).site == "mpp-lain"
        with pytest.raises(ValidationError):
            direct.site = "mpp-lain"  # type: ignore[misc]  # frozen

    def test_an_offset_time_is_turned_to_utc(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"2026-03-02T08:00:00+07:00" if k == "ce_time" else v) for k, v in headers]

        direct, validated = _read_both(value, headers)

        assert isinstance(direct, Envelope)
        assert direct.occurred_at.tzinfo is UTC
        assert direct.occurred_at == datetime(2026, 3, 2, 1, 0, tzinfo=UTC) == validated.occurred_at  # type: ignore[attr-defined]

    def test_optional_headers_absent_or_empty_read_as_before(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        without = [(k, v) for k, v in headers if k != "ce_causationid"]
        empty = [(k, None if k == "ce_causationid" else v) for k, v in headers]

        for record in (without, empty):
            direct, validated = _read_both(value, record)
            assert isinstance(direct, Envelope)
            assert direct == validated
        assert from_record(value, without).causation_id is None
        assert from_record(value, empty).causation_id == ""

    def test_the_last_of_repeated_headers_wins(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))

        direct, validated = _read_both(value, [*headers, ("ce_site", b"mpp-lain")])

        assert isinstance(direct, Envelope)
        assert direct == validated
        assert direct.site == "mpp-lain"

    def test_every_spelling_of_an_id_reads_as_the_same_uuid_either_way(self) -> None:
        envelope = example_envelope(EVENTS[0])
        _key, value, headers = to_record(envelope)
        text = str(envelope.id)
        spellings = [
            text.upper(),
            text.replace("-", ""),
            "{" + text + "}",
            "urn:uuid:" + text,
            text[:8] + text[9:],  # a hyphen left out: only the model's reading takes it
            text.replace("-", "", 1) + "-",
        ]
        for spelling in spellings:
            changed = [(k, spelling.encode() if k == "ce_id" else v) for k, v in headers]
            direct, validated = _read_both(value, changed)
            assert isinstance(validated, Envelope)
            assert validated.id == envelope.id
            assert direct is None or direct == validated
            assert from_record(value, changed).id == envelope.id

    def test_a_header_that_is_not_utf8_reads_as_before(self) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        headers = [(k, b"mpp-\xff" if k == "ce_site" else v) for k, v in headers]

        direct, validated = _read_both(value, headers)

        assert direct is None
        assert isinstance(validated, Envelope)
        assert from_record(value, headers).site == "mpp-\ufffd"

    @pytest.mark.parametrize(
        ("header", "bad"),
        [
            ("ce_id", b"not-a-uuid"),
            ("ce_id", None),
            ("ce_time", b"2026-03-02T08:00:00"),
            ("ce_time", b"kemarin"),
            ("ce_eventversion", b"satu"),
            ("ce_eventversion", b"0"),
            ("ce_eventversion", b"99"),
            ("ce_type", b"SomethingNobodyPublishes"),
            ("ce_site", b""),
            ("ce_site", None),
            ("ce_agency", b""),
            ("ce_source", b""),
            ("ce_subject", b""),
            ("ce_correlationid", b""),
        ],
    )
    def test_a_bad_header_is_rejected_with_the_same_error(self, header: str, bad: bytes | None) -> None:
        _key, value, headers = to_record(example_envelope(EVENTS[0]))
        changed = [(k, bad if k == header else v) for k, v in headers]

        direct, validated = _read_both(value, changed)

        assert direct is None
        assert isinstance(validated, tuple)
        with pytest.raises(validated[0]) as raised:
            from_record(value, changed)
        assert str(raised.value) == validated[1]

    @pytest.mark.parametrize("value", [None, b"{not json", b"{}", b"[1, 2]"])
    def test_a_bad_value_is_rejected_with_the_same_error(self, value: bytes | None) -> None:
        _key, _value, headers = to_record(example_envelope(EVENTS[0]))

        direct, validated = _read_both(value, headers)

        assert direct is None
        assert isinstance(validated, tuple)
        with pytest.raises(MalformedEvent) as raised:
            from_record(value, headers)
        assert str(raised.value) == validated[1]

    def test_headers_given_as_an_iterator_are_read_once(self) -> None:
        envelope = example_envelope(EVENTS[0])
        _key, value, headers = to_record(envelope)

        assert from_record(value, iter(headers)) == envelope  # type: ignore[arg-type]


class TestEventIds:
    """Event ids are version 7 UUIDs: the creation time first, so ids made later sort later (as UUIDs
    and as text), and random bits after it, so ids made in the same millisecond still differ."""

    def test_a_new_id_is_a_version_7_uuid_carrying_its_creation_time(self) -> None:
        before = datetime.now(UTC)
        event_id = new_event_id()
        after = datetime.now(UTC)

        assert event_id.version == 7
        assert event_id.variant == uuid.RFC_4122
        made = datetime.fromtimestamp((event_id.int >> 80) / 1000, UTC)
        assert before - timedelta(milliseconds=1) <= made <= after

    def test_ids_made_in_different_milliseconds_sort_by_time_and_none_repeat(self) -> None:
        ids = []
        for _ in range(20):
            now = datetime.now(UTC)
            while datetime.now(UTC) - now < timedelta(milliseconds=2):
                pass
            ids.append(new_event_id())
        same_moment = [new_event_id() for _ in range(10_000)]

        assert ids == sorted(ids)
        assert [str(i) for i in ids] == sorted(str(i) for i in ids)
        assert len(set(same_moment)) == len(same_moment)

    def test_an_envelope_gets_a_new_id_unless_given_one(self) -> None:
        payload = example_payload(EVENTS[0])
        made = Envelope.wrap(payload, producer="mpp.test", agency="dpmptsp", site="mpp-a", subject="s-1")
        given = uuid.uuid4()
        kept = Envelope.wrap(
            payload, producer="mpp.test", agency="dpmptsp", site="mpp-a", subject="s-1", event_id=given
        )

        assert made.id.version == 7
        assert kept.id == given
