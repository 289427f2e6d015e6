"""The values a template may use: the trigger event's data plus labels derived from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mpp.contracts.envelope import Envelope
from mpp.notification.ports import Names

DOCUMENT_NAMES = {
    "ktp_el": "KTP-el",
    "kk": "Kartu Keluarga",
    "akta_kelahiran": "Akta Kelahiran",
    "akta_kematian": "Akta Kematian",
    "akta_perkawinan": "Akta Perkawinan",
    "akta_perceraian": "Akta Perceraian",
    "kia": "Kartu Identitas Anak",
    "surat_pindah": "Surat Pindah",
    "ikd": "Identitas Kependudukan Digital",
}
MEDIUM_NAMES = {"printed": "dapat diambil di loket", "electronic": "dikirim secara elektronik"}

# Fields of events that must not reach a message even if a template named them.
_NEVER = frozenset({"nik", "officer_ref", "applicant_ref", "citizen_ref", "complainant_ref", "subject_ref"})


def message_context(envelope: Envelope, names: Names) -> dict[str, Any]:
    """Template values for one event (JSON-safe, so they can be stored with the delivery)."""
    data = {k: v for k, v in envelope.payload.model_dump(mode="json").items() if k not in _NEVER}
    values: dict[str, Any] = dict(data)
    values["site_name"] = names.site_name(envelope.site)
    service_type = data.get("service_type")
    if isinstance(service_type, str):
        values["service_name"] = names.service_name(service_type)
        missing = data.get("missing")
        if isinstance(missing, list):
            values["missing"] = [names.requirement_name(service_type, str(code)) for code in missing]
    counter = data.get("counter")
    if isinstance(counter, str):
        values["counter_name"] = names.counter_name(counter)
    if "document_kind" in data:
        values["document_name"] = DOCUMENT_NAMES.get(str(data["document_kind"]), str(data["document_kind"]))
    if "medium" in data:
        values["medium_name"] = MEDIUM_NAMES.get(str(data["medium"]), str(data["medium"]))
    slot = data.get("slot_start")
    if isinstance(slot, str):
        local = datetime.fromisoformat(slot).astimezone(ZoneInfo(names.timezone(envelope.site)))
        values["slot_time"] = local.strftime("%d/%m/%Y %H:%M")
    return values
