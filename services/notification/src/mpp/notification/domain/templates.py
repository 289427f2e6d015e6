"""Message templates per message kind, channel and locale, and their strict renderer.

A template names the fields it needs; rendering takes them from the trigger event's data only. A missing
(or empty) field is a :class:`TemplateError` naming the template and the field, never a half-filled
message. SMS texts stay within one GSM-7 segment (160 characters) where the data allows.

WhatsApp messages are approved templates at the provider: what is sent is the template's name, its
language and the body parameters, in the shape of the WhatsApp Business Cloud API; ``text`` here is the
approved wording, kept for the record and for tests.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpp.contracts.events.notification import MessageKind, NotificationChannel

DEFAULT_LOCALE = "id"

# The GSM 03.38 default alphabet (and its extension table, which costs two characters each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
SMS_SEGMENT = 160


def gsm7_length(text: str) -> int | None:
    """Septets the text takes in GSM-7, or None when it needs UCS-2."""
    length = 0
    for ch in text:
        if ch in GSM7_BASIC:
            length += 1
        elif ch in GSM7_EXTENSION:
            length += 2
        else:
            return None
    return length


class TemplateError(Exception):
    """A template cannot be rendered from the data given (a configuration or data error)."""

    def __init__(self, template: str, problem: str) -> None:
        self.template = template
        super().__init__(f"template {template}: {problem}")


@dataclass(frozen=True)
class Template:
    name: str
    kind: MessageKind
    channel: NotificationChannel
    locale: str
    text: str
    subject: str | None = None
    """Email subject line (email only)."""
    whatsapp_name: str | None = None
    """Name of the approved WhatsApp template (WhatsApp only)."""
    short: str | None = None
    """SMS only: the text used when the full one does not fit one GSM-7 segment."""

    @functools.cached_property
    def fields(self) -> tuple[str, ...]:
        """The fields the template needs, in order of first use (subject first)."""
        seen: list[str] = []
        for part in (self.subject or "", self.text, self.short or ""):
            for _lit, field, _spec, _conv in string.Formatter().parse(part):
                if field is not None and field not in seen:
                    if not field.isidentifier():
                        raise TemplateError(self.name, f"field {field!r} is not a plain name")
                    seen.append(field)
        return tuple(seen)


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    channel: NotificationChannel
    locale: str
    text: str
    subject: str | None
    whatsapp_name: str | None
    parameters: tuple[str, ...]
    """Values of the template's fields in order (the WhatsApp body parameters)."""

    def whatsapp_template(self) -> dict[str, Any]:
        """The ``template`` object of a Cloud API message."""
        return {
            "name": self.whatsapp_name or self.template,
            "language": {"code": self.locale},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in self.parameters]}
            ],
        }


def _value(template: Template, values: Mapping[str, Any], field: str) -> str:
    if field not in values or values[field] is None:
        raise TemplateError(template.name, f"the event has no value for {field!r}")
    value = values[field]
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value).strip()
    if not text:
        raise TemplateError(template.name, f"the value of {field!r} is empty")
    return text


def render(template: Template, values: Mapping[str, Any]) -> RenderedMessage:
    """The message with every field filled from ``values``; raises :class:`TemplateError` otherwise."""
    filled = {field: _value(template, values, field) for field in template.fields}
    text = template.text.format_map(filled)
    if template.short is not None and (gsm7_length(text) or SMS_SEGMENT + 1) > SMS_SEGMENT:
        text = template.short.format_map(filled)
    body = _body_fields(template)  # looked up once: the cache key hashes the whole template
    return RenderedMessage(
        template=template.name,
        channel=template.channel,
        locale=template.locale,
        text=text,
        subject=template.subject.format_map(filled) if template.subject else None,
        whatsapp_name=template.whatsapp_name,
        parameters=tuple(filled[f] for f in template.fields if f in body),
    )


@functools.cache
def _body_fields(template: Template) -> frozenset[str]:
    return frozenset(f for _l, f, _s, _c in string.Formatter().parse(template.text) if f is not None)


class TemplateBook:
    """Templates found by (name, channel, locale), falling back to the default locale."""

    def __init__(self, templates: list[Template]) -> None:
        self._by_key: dict[tuple[str, NotificationChannel, str], Template] = {}
        for t in templates:
            key = (t.name, t.channel, t.locale)
            if key in self._by_key:
                raise ValueError(f"template {t.name} ({t.channel.value}, {t.locale}) is defined twice")
            t.fields  # noqa: B018 - validates the placeholders
            self._by_key[key] = t

    def find(self, name: str, channel: NotificationChannel, locale: str = DEFAULT_LOCALE) -> Template | None:
        return self._by_key.get((name, channel, locale)) or self._by_key.get((name, channel, DEFAULT_LOCALE))

    def names(self) -> frozenset[str]:
        return frozenset(name for name, _c, _l in self._by_key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_key.values())


W, S, E = NotificationChannel.WHATSAPP, NotificationChannel.SMS, NotificationChannel.EMAIL
K = MessageKind

_SIGN = "{site_name}"


def _three(
    name: str,
    kind: MessageKind,
    *,
    whatsapp: str,
    sms: str,
    subject: str,
    email: str,
    sms_short: str | None = None,
) -> list[Template]:
    return [
        Template(name, kind, W, DEFAULT_LOCALE, whatsapp, whatsapp_name=f"mpp_{name}"),
        Template(name, kind, S, DEFAULT_LOCALE, sms, short=sms_short),
        Template(name, kind, E, DEFAULT_LOCALE, email, subject=subject),
    ]


BAHASA_INDONESIA: list[Template] = [
    *_three(
        "ticket_issued",
        K.TICKET_CONFIRMATION,
        whatsapp="Nomor antrean Anda {ticket_number} untuk layanan {service_name}. Mohon tunggu panggilan.",
        sms="Antrean {ticket_number} ({service_name}). Mohon tunggu panggilan. " + _SIGN,
        sms_short="Nomor antrean Anda {ticket_number}. Mohon tunggu panggilan. " + _SIGN,
        subject="Nomor antrean {ticket_number}",
        email="Yth. Bapak/Ibu,\n\nNomor antrean Anda {ticket_number} untuk layanan {service_name}.\n"
        "Mohon tunggu sampai nomor Anda dipanggil.\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "ticket_called",
        K.TICKET_CALLED,
        whatsapp="Nomor antrean {ticket_number} dipanggil. Silakan menuju {counter_name}.",
        sms="Nomor {ticket_number} dipanggil, silakan ke {counter_name}. " + _SIGN,
        subject="Nomor {ticket_number} dipanggil ke {counter_name}",
        email="Yth. Bapak/Ibu,\n\nNomor antrean {ticket_number} sedang dipanggil.\n"
        "Silakan menuju {counter_name}.\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "ticket_almost_called",
        K.TICKET_ALMOST_CALLED,
        whatsapp="Nomor antrean {ticket_number} ({service_name}) segera dipanggil: {tickets_ahead} antrean "
        "lagi di depan Anda. Mohon bersiap di dekat loket.",
        sms="Antrean {ticket_number} segera dipanggil ({tickets_ahead} lagi). Mohon bersiap. " + _SIGN,
        subject="Nomor {ticket_number} segera dipanggil",
        email="Yth. Bapak/Ibu,\n\nNomor antrean {ticket_number} untuk layanan {service_name} segera "
        "dipanggil: {tickets_ahead} antrean lagi di depan Anda.\nMohon bersiap di dekat loket.\n\nSalam,\n"
        + _SIGN,
    ),
    *_three(
        "appointment_booked",
        K.APPOINTMENT_CONFIRMATION,
        whatsapp="Janji temu Anda untuk {service_name} tercatat pada {slot_time}. Kode: {booking_code}.",
        sms="Janji temu {service_name} {slot_time}. Kode {booking_code}. " + _SIGN,
        subject="Janji temu {slot_time}",
        email="Yth. Bapak/Ibu,\n\nJanji temu Anda untuk layanan {service_name} tercatat pada {slot_time}.\n"
        "Tunjukkan kode {booking_code} di kios saat datang.\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "appointment_cancelled",
        K.APPOINTMENT_CANCELLED,
        whatsapp="Janji temu Anda untuk {service_name} pada {slot_time} dibatalkan.",
        sms="Janji temu {service_name} {slot_time} dibatalkan. " + _SIGN,
        subject="Janji temu {slot_time} dibatalkan",
        email="Yth. Bapak/Ibu,\n\nJanji temu Anda untuk layanan {service_name} pada {slot_time} "
        "dibatalkan.\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "application_received",
        K.APPLICATION_RECEIVED,
        whatsapp="Permohonan {service_name} Anda diterima. Kode pelacakan: {tracking_code}.",
        sms="Permohonan {service_name} diterima. Kode lacak {tracking_code}. " + _SIGN,
        subject="Permohonan diterima: {tracking_code}",
        email="Yth. Bapak/Ibu,\n\nPermohonan {service_name} Anda sudah kami terima.\n"
        "Kode pelacakan: {tracking_code}.\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "application_returned",
        K.APPLICATION_RETURNED,
        whatsapp="Permohonan {service_name} Anda perlu dilengkapi: {missing}.",
        sms="Permohonan {service_name} perlu dilengkapi: {missing}. " + _SIGN,
        sms_short="Permohonan Anda perlu dilengkapi. Cek rinciannya di loket atau laman pelacakan. " + _SIGN,
        subject="Permohonan perlu dilengkapi",
        email="Yth. Bapak/Ibu,\n\nPermohonan {service_name} Anda dikembalikan untuk dilengkapi.\n"
        "Yang perlu dilengkapi: {missing}.\nCatatan petugas: {note}\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "application_approved",
        K.APPLICATION_APPROVED,
        whatsapp="Permohonan {service_name} Anda disetujui dan sedang diproses untuk diterbitkan.",
        sms="Permohonan {service_name} disetujui. " + _SIGN,
        subject="Permohonan disetujui",
        email="Yth. Bapak/Ibu,\n\nPermohonan {service_name} Anda disetujui dan sedang diproses "
        "untuk diterbitkan.\n\nSalam,\n" + _SIGN,
    ),
    *_three(
        "application_rejected",
        K.APPLICATION_REJECTED,
        whatsapp="Permohonan {service_name} Anda ditolak. Alasan: {reason}",
        sms="Permohonan {service_name} ditolak. Info: loket/kanal resmi. " + _SIGN,
        subject="Permohonan ditolak",
        email="Yth. Bapak/Ibu,\n\nPermohonan {service_name} Anda ditolak.\nAlasan: {reason}\n\nSalam,\n"
        + _SIGN,
    ),
    *_three(
        "permit_issued",
        K.PERMIT_ISSUED,
        whatsapp="Izin {service_name} Anda sudah terbit dengan nomor {permit_number}.",
        sms="Izin {service_name} terbit, nomor {permit_number}. " + _SIGN,
        subject="Izin terbit: {permit_number}",
        email="Yth. Bapak/Ibu,\n\nIzin {service_name} Anda sudah terbit dengan nomor {permit_number}.\n\n"
        "Salam,\n" + _SIGN,
    ),
    *_three(
        "document_ready",
        K.DOCUMENT_READY,
        whatsapp="Dokumen {document_name} Anda sudah selesai ({medium_name}).",
        sms="Dokumen {document_name} selesai ({medium_name}). " + _SIGN,
        subject="Dokumen {document_name} selesai",
        email="Yth. Bapak/Ibu,\n\nDokumen {document_name} Anda sudah selesai ({medium_name}).\n\nSalam,\n"
        + _SIGN,
    ),
    *_three(
        "complaint_answered",
        K.COMPLAINT_UPDATE,
        whatsapp="Pengaduan Anda nomor {complaint_id} sudah ditanggapi. Cek kanal pengaduan untuk jawabannya.",
        sms="Pengaduan {complaint_id} sudah ditanggapi. " + _SIGN,
        subject="Pengaduan {complaint_id} ditanggapi",
        email="Yth. Bapak/Ibu,\n\nPengaduan Anda nomor {complaint_id} sudah ditanggapi.\n"
        "Silakan cek kanal pengaduan untuk jawabannya.\n\nSalam,\n" + _SIGN,
    ),
]


def default_book() -> TemplateBook:
    return TemplateBook(BAHASA_INDONESIA)
