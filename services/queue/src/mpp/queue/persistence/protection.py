"""Complaint text sealed at rest.

A complaint's description (the citizen's own words) and the contact a complainant leaves may carry
personal data. They are stored encrypted with AES-256-GCM under the service's data key
(``MPP_QUEUE_DATA_KEY``), each bound to its complaint and field (the associated data), so a value copied
into another row or column does not open. Officers read them through the API, which opens them.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = b"\x01"
DEV_DATA_KEY = "bXBwLXF1ZXVlLWRldi1vbmx5LWNvbXBsYWludC1rZXk="
"""Development only (base64 of 32 known bytes); a deployment sets MPP_QUEUE_DATA_KEY."""


class UnreadableText(Exception):
    """A sealed value that does not open with this key (wrong key or damaged value)."""


def decode_key(value: str) -> bytes:
    """A base64 AES-256 key; ValueError unless it is 32 bytes."""
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the key must be base64") from exc
    if len(key) != 32:
        raise ValueError("the key must be 32 bytes (base64 of 32 random bytes)")
    return key


class TextSealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @staticmethod
    def _bound_to(record_id: str, field: str) -> bytes:
        return f"{record_id}/{field}".encode()

    def seal(self, record_id: str, field: str, text: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, text.encode(), self._bound_to(record_id, field))

    def open(self, record_id: str, field: str, sealed: bytes) -> str:
        sealed = bytes(sealed)
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + TAG_BYTES:
            raise UnreadableText(record_id)
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, self._bound_to(record_id, field)).decode()
        except InvalidTag as exc:
            raise UnreadableText(record_id) from exc


def development_sealer() -> TextSealer:
    return TextSealer(decode_key(DEV_DATA_KEY))
