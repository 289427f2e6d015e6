"""Contact details at rest: AES-256-GCM per field, bound to its column and citizen reference."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


class UndecryptableContact(Exception):
    """A stored contact detail does not decrypt under the configured key."""


def decode_key(encoded: str) -> bytes:
    """The 32-byte key from base64 text; ValueError names the problem, never the key."""
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the contact data key must be base64 text") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"the contact data key must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


class ContactCipher:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, value: str, *, column: str, citizen_ref: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        aad = f"{column}:{citizen_ref}".encode()
        return VERSION + nonce + self._aead.encrypt(nonce, value.encode(), aad)

    def open(self, stored: bytes, *, column: str, citizen_ref: str) -> str:
        blob = bytes(stored)
        if blob[:1] != VERSION or len(blob) < 1 + NONCE_BYTES + 16:
            raise UndecryptableContact(column)
        aad = f"{column}:{citizen_ref}".encode()
        try:
            return self._aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad).decode()
        except InvalidTag:
            raise UndecryptableContact(column) from None
