"""The trigger configuration is validated at startup and refused with a message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mpp.notification.app import DEFAULT_TRIGGERS, create_app, load_triggers
from mpp.notification.config import NotificationSettings
from mpp.notification.domain.rules import ConfigError, parse_trigger_config
from mpp.notification.domain.templates import default_book
from mpp.notification.handlers import check_templates


def _default() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEFAULT_TRIGGERS.read_text())
    return document


def _parse(document: dict[str, Any]) -> None:
    parse_trigger_config(json.dumps(document), source="triggers.json")


def test_the_packaged_configuration_is_valid_and_has_templates_for_every_channel() -> None:
    config = load_triggers(NotificationSettings(), default_book())
    assert {"TicketCalled", "ApplicationReturned", "PermitIssued", "DocumentIssued"} <= config.event_types
    called = config.trigger("TicketCalled")
    assert called is not None and called.urgent and called.critical


def test_not_json_is_refused_with_the_line() -> None:
    with pytest.raises(ConfigError, match=r"triggers.json: not valid JSON .* line 1"):
        parse_trigger_config("{", source="triggers.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["triggers"][0].update(event_type="TicketTeleported"),
            "unknown event type 'TicketTeleported'",
        ),
        (lambda d: d["triggers"][0].update(message_kind="gossip"), r"triggers\.0\.message_kind"),
        (lambda d: d["triggers"][0].update(channels=["whatsapp", "whatsapp"]), "a channel is listed twice"),
        (lambda d: d["triggers"][0].update(channels=["pigeon"]), r"triggers\.0\.channels\.0"),
        (lambda d: d["triggers"][0].update(colour="red"), r"triggers\.0\.colour: Extra inputs"),
        (lambda d: d["triggers"].append(dict(d["triggers"][1])), "has two triggers"),
        (
            lambda d: d["triggers"][4].update(recipient={"field": "nobody_ref"}),
            "ApplicationSubmitted: the event has no field 'nobody_ref'",
        ),
        (
            lambda d: d["triggers"][1].update(recipient={"link": "tram", "key_field": "visit_id"}),
            "no link of kind 'tram'",
        ),
        (
            lambda d: d["triggers"][1].update(
                recipient={"field": "x", "link": "visit", "key_field": "visit_id"}
            ),
            "either a field of the event or a link",
        ),
        (
            lambda d: d["triggers"][0].update(message_kind="survey_invitation", critical=True),
            "survey_invitation is an optional message and cannot be critical",
        ),
        (
            lambda d: d["quiet_hours"]["default"].update(timezone="Asia/Atlantis"),
            "unknown time zone 'Asia/Atlantis'",
        ),
        (lambda d: d["quiet_hours"]["default"].update(start="25:00"), r"quiet_hours\.default\.start"),
        (lambda d: d.update(triggers=[]), "triggers: Tuple should have at least 1 item"),
    ],
)
def test_bad_configuration_is_refused_naming_the_problem(change: Any, message: str) -> None:
    document = _default()
    change(document)
    with pytest.raises(ConfigError, match=message):
        _parse(document)


def test_a_trigger_without_a_template_on_one_of_its_channels_is_refused() -> None:
    document = _default()
    document["triggers"][0]["template"] = "no_such_template"
    config = parse_trigger_config(json.dumps(document))
    with pytest.raises(ConfigError, match="TicketIssued: no template 'no_such_template' for whatsapp"):
        check_templates(config, default_book())


def test_the_service_does_not_start_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "triggers.json"
    bad.write_text(json.dumps({"triggers": [{"event_type": "TicketCalled"}]}))
    with pytest.raises(ConfigError, match=r"triggers.json: triggers\.0\.message_kind: Field required"):
        create_app(NotificationSettings(trigger_file=bad, database_url="sqlite+aiosqlite:///:memory:"))
