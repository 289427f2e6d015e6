"""Every configured message renders from the contracts' example events, in every channel, strictly."""

from __future__ import annotations

import pytest

from mpp.contracts.envelope import registered_events
from mpp.contracts.events.notification import MessageKind, NotificationChannel
from mpp.contracts.examples import example_envelope
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.notification.app import CatalogueNames, load_triggers
from mpp.notification.config import NotificationSettings
from mpp.notification.domain.context import message_context
from mpp.notification.domain.templates import (
    SMS_SEGMENT,
    Template,
    TemplateBook,
    TemplateError,
    default_book,
    gsm7_length,
    render,
)

BOOK = default_book()
CONFIG = load_triggers(NotificationSettings(), BOOK)
NAMES = CatalogueNames(load_demo_catalogue())
CLASSES = {cls.event_type: cls for cls in registered_events()}
CASES = [(t.event_type, t.template, c) for t in CONFIG.triggers for c in t.channels]


@pytest.mark.parametrize(("event_type", "template", "channel"), CASES)
def test_every_configured_message_renders_from_the_example_event(
    event_type: str, template: str, channel: NotificationChannel
) -> None:
    envelope = example_envelope(CLASSES[event_type])
    found = BOOK.find(template, channel)
    assert found is not None
    message = render(found, message_context(envelope, NAMES))
    assert "{" not in message.text and "None" not in message.text
    assert message.text.strip()
    if channel is NotificationChannel.SMS:
        assert gsm7_length(message.text) is not None, message.text
        assert (gsm7_length(message.text) or 0) <= SMS_SEGMENT, message.text
    if channel is NotificationChannel.EMAIL:
        assert message.subject
    if channel is NotificationChannel.WHATSAPP:
        shape = message.whatsapp_template()
        assert shape["name"] == f"mpp_{template}"
        assert shape["language"] == {"code": "id"}
        parameters = shape["components"][0]["parameters"]
        assert [p["text"] for p in parameters] == list(message.parameters)
        assert all(p["type"] == "text" and p["text"] in message.text for p in parameters)


def test_ticket_called_names_the_number_and_the_counter() -> None:
    from mpp.contracts.events.queue import TicketCalledV1

    envelope = example_envelope(TicketCalledV1)
    payload = envelope.payload
    assert isinstance(payload, TicketCalledV1)
    found = BOOK.find("ticket_called", NotificationChannel.SMS)
    assert found is not None
    text = render(found, message_context(envelope, NAMES)).text
    assert payload.ticket_number in text
    assert NAMES.counter_name(payload.counter) in text


def test_returned_application_says_what_is_missing() -> None:
    from mpp.contracts.events.licensing import ApplicationReturnedV1

    envelope = example_envelope(ApplicationReturnedV1)
    found = BOOK.find("application_returned", NotificationChannel.EMAIL)
    assert found is not None
    message = render(found, message_context(envelope, NAMES))
    payload = envelope.payload
    assert isinstance(payload, ApplicationReturnedV1)
    for code in payload.missing:
        assert NAMES.requirement_name(payload.service_type, code) in message.text
    assert payload.note in message.text


def test_a_missing_field_is_an_error_naming_the_template_never_a_half_message() -> None:
    found = BOOK.find("ticket_called", NotificationChannel.WHATSAPP)
    assert found is not None
    with pytest.raises(
        TemplateError, match="template ticket_called: the event has no value for 'counter_name'"
    ):
        render(found, {"ticket_number": "A-001", "site_name": "MPP"})
    with pytest.raises(TemplateError, match="the value of 'ticket_number' is empty"):
        render(found, {"ticket_number": " ", "counter_name": "Loket 1", "site_name": "MPP"})


def test_personal_fields_of_events_never_reach_the_template_values() -> None:
    from mpp.contracts.events.licensing import ApplicationSubmittedV1

    values = message_context(example_envelope(ApplicationSubmittedV1), NAMES)
    assert "applicant_ref" not in values
    assert "tracking_code" in values


def test_templates_with_unsafe_placeholders_or_duplicates_are_refused() -> None:
    with pytest.raises(TemplateError, match="not a plain name"):
        TemplateBook(
            [Template("x", MessageKind.TICKET_CALLED, NotificationChannel.SMS, "id", "{a.__class__}")]
        )
    twice = Template("x", MessageKind.TICKET_CALLED, NotificationChannel.SMS, "id", "{a}")
    with pytest.raises(ValueError, match="defined twice"):
        TemplateBook([twice, twice])


def test_another_locale_falls_back_to_bahasa_indonesia() -> None:
    english = Template("ticket_called", MessageKind.TICKET_CALLED, NotificationChannel.SMS, "en", "No. {n}")
    book = TemplateBook([*BOOK, english])
    assert book.find("ticket_called", NotificationChannel.SMS, "en") is english
    found = book.find("ticket_called", NotificationChannel.WHATSAPP, "en")
    assert found is not None and found.locale == "id"


def test_gsm7_length_counts_extension_characters_twice_and_refuses_others() -> None:
    assert gsm7_length("Loket 3") == 7
    assert gsm7_length("[A]") == 5
    assert gsm7_length("Antrean 🙂") is None


def test_an_sms_too_long_for_one_segment_uses_the_short_text() -> None:
    from mpp.contracts.events.licensing import ApplicationReturnedV1

    envelope = example_envelope(ApplicationReturnedV1)
    values = message_context(envelope, NAMES)
    values["missing"] = ["Dokumen rencana teknis: arsitektur, struktur, dan utilitas"] * 3
    found = BOOK.find("application_returned", NotificationChannel.SMS)
    assert found is not None
    text = render(found, values).text
    assert (gsm7_length(text) or 999) <= SMS_SEGMENT
    assert text.startswith("Permohonan Anda perlu dilengkapi.")
