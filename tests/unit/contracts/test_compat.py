"""The compatibility check between a schema and its committed predecessor of the same version."""

import json
from pathlib import Path
from typing import Any

import pytest

from mpp.contracts.compat import check_compatible
from mpp.contracts.events.queue import SurveySubmittedV1
from mpp.contracts.examples import example_payload
from mpp.contracts.generate import event_schema

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "compat"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


BASE = _load("base.v1.json")


class TestIncompatibleChanges:
    @pytest.mark.parametrize(
        ("fixture", "expected"),
        [
            ("removed_field.json", "field 'waiting_seconds' was removed"),
            ("retyped_field.json", "waiting_seconds: type changed from integer to string"),
            ("new_required_field.json", "new field 'counter' is required"),
            ("became_required.json", "field 'note' became required"),
            ("nested_retyped.json", "$defs.Scores.u2 (anyOf[0]): type changed from integer to string"),
            ("nested_removed_field.json", "$defs.Scores: field 'u2' was removed"),
            ("enum_narrowed.json", "$defs.Channel: enum values removed: online"),
            ("ref_changed.json", "channel: type changed from Channel to Scores"),
            ("format_changed.json", "submitted_at: format changed from 'date-time' to 'date'"),
            ("made_nullable.json", "waiting_seconds: type changed from integer to integer | null"),
            ("bound_tightened.json", "note: maxLength tightened from 500 to 100"),
            ("moved_topic.json", "moved from topic mpp.test.samples to mpp.test.other"),
        ],
    )
    def test_is_reported(self, fixture: str, expected: str) -> None:
        problems = check_compatible(BASE, _load(fixture))

        assert any(expected in p for p in problems), problems


class TestCompatibleChanges:
    @pytest.mark.parametrize(
        "fixture",
        [
            "added_optional_field.json",
            "enum_widened.json",
            "bound_loosened.json",
            "description_changed.json",
        ],
    )
    def test_is_accepted(self, fixture: str) -> None:
        assert check_compatible(BASE, _load(fixture)) == []

    def test_an_unchanged_schema_is_accepted(self) -> None:
        assert check_compatible(BASE, BASE) == []

    def test_a_generated_schema_is_compatible_with_itself(self) -> None:
        schema = event_schema(type(example_payload(SurveySubmittedV1)))

        assert check_compatible(schema, schema) == []
