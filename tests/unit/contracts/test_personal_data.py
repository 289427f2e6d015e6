"""Personal data appears only in marked fields, and marked fields only on personal-data topics."""

from typing import Any

import pytest

from mpp.contracts import PERSONAL_DATA_KEY, EventPayload, registered_events
from mpp.contracts.generate import event_schema
from mpp.contracts.topics import topic

pytestmark = pytest.mark.unit

PERSONAL_WORDS = frozenset({"nik", "name", "phone", "email", "address", "birth", "nip", "kk"})
"""Words in a field name that suggest personal data (UU 27/2022 PDP)."""

EVENTS = registered_events()


def _id(cls: type[EventPayload]) -> str:
    return f"{cls.event_type}.v{cls.event_version}"


def _fields(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property of the payload and of its nested types, as (dotted name, schema)."""
    found = [(name, prop) for name, prop in schema.get("properties", {}).items()]
    for def_name, definition in schema.get("$defs", {}).items():
        found += [(f"{def_name}.{n}", p) for n, p in definition.get("properties", {}).items()]
    return found


def _marked(cls: type[EventPayload]) -> list[str]:
    return [name for name, prop in _fields(event_schema(cls)) if prop.get(PERSONAL_DATA_KEY)]


def _suspicious_unmarked(cls: type[EventPayload]) -> list[str]:
    return [
        name
        for name, prop in _fields(event_schema(cls))
        if PERSONAL_WORDS & set(name.rsplit(".", 1)[-1].split("_")) and not prop.get(PERSONAL_DATA_KEY)
    ]


class TestPersonalDataMarkers:
    @pytest.mark.parametrize("cls", [c for c in EVENTS if not topic(c.topic).personal_data], ids=_id)
    def test_no_field_on_a_non_personal_topic_is_marked_personal(self, cls: type[EventPayload]) -> None:
        assert _marked(cls) == []

    @pytest.mark.parametrize("cls", EVENTS, ids=_id)
    def test_every_field_named_like_personal_data_is_marked(self, cls: type[EventPayload]) -> None:
        assert _suspicious_unmarked(cls) == []

    @pytest.mark.parametrize(
        ("event_type", "fields"),
        [
            ("CitizenVerificationRequested", ["nik"]),
            ("CitizenContactRegistered", ["phone", "email"]),
        ],
    )
    def test_events_on_personal_topics_mark_their_personal_fields(
        self, event_type: str, fields: list[str]
    ) -> None:
        cls = next(c for c in EVENTS if c.event_type == event_type)

        assert topic(cls.topic).personal_data
        assert _marked(cls) == fields

    def test_document_issued_does_not_carry_the_document_number(self) -> None:
        cls = next(c for c in EVENTS if c.event_type == "DocumentIssued")

        assert not {"nik", "document_number", "kk_number"} & set(cls.model_fields)
