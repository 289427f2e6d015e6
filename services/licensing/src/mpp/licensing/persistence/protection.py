"""The pending NIK verification request, sealed at rest.

Licensing does not keep applicants' NIKs. To ask identity again (an unanswered request, a registry that
was unavailable, an officer's retry) it keeps the request it published, NIK included, encrypted with
AES-256-GCM and bound to the application id, only while the NIK is not settled; the column is emptied
once identity verified or rejected it.
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


class UnreadableRequest(Exception):
    """The sealed request does not open with this key (wrong key or damaged value)."""


def decode_key(value: str) -> bytes:
    """A base64 AES-256 key; ValueError unless it is 32 bytes."""
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the key must be base64") from exc
    if len(key) != 32:
        raise ValueError("the key must be 32 bytes (base64 of 32 random bytes)")
    return key


class RequestSealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, application_id: str, request_json: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, request_json, application_id.encode())

    def open(self, application_id: str, sealed: bytes) -> bytes:
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + TAG_BYTES:
            raise UnreadableRequest(application_id)
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, application_id.encode())
        except InvalidTag as exc:
            raise UnreadableRequest(application_id) from exc
