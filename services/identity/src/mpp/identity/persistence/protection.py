"""Personal data at rest: AES-GCM field encryption and keyed hashes (HMAC-SHA256).

Three independent keys:

* the data key encrypts fields; each value gets a fresh 96-bit nonce, and the associated data binds the
  ciphertext to its column and record, so a ciphertext copied to another row or column does not decrypt;
* the lookup key hashes the NIK into the unique, indexed ``nik_lookup`` column (and the access log's
  ``subject_hash``): finding a NIK needs no decryption, and the hash is useless without the key;
* the citizen-reference key derives ``citizen_ref`` (``c_`` + 32 hex digits), the only identifier other
  services receive. Knowing the lookup hashes does not reveal the references, nor the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


class UndecryptableField(Exception):
    """A stored ciphertext does not decrypt under the data key (wrong key, or moved or altered bytes)."""


def decode_data_key(encoded: str) -> bytes:
    """The 32-byte AES key from its base64 text; raises ValueError naming the problem (never the key)."""
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data key must be base64 text") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"the data key must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


class FieldCipher:
    """AES-256-GCM for single fields. Stored form: format byte, nonce, ciphertext with its tag."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"AES-256-GCM needs a {KEY_BYTES}-byte key")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, stored: bytes, *, context: str) -> str:
        blob = bytes(stored)
        if blob[:1] != FORMAT_V1 or len(blob) < 1 + NONCE_BYTES + 16:
            raise UndecryptableField(context)
        nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except InvalidTag:
            raise UndecryptableField(context) from None


class KeyedHash:
    """HMAC-SHA256 under a secret key, as 64 hex digits: stable per value, meaningless without the key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a keyed hash needs a non-empty key")
        self._key = key

    def hex(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()


class CitizenKeys:
    """Everything that protects the registry's personal data, built once from the settings."""

    def __init__(self, *, data_key: bytes, lookup_key: bytes, citizen_ref_key: bytes) -> None:
        self.cipher = FieldCipher(data_key)
        self._lookup = KeyedHash(lookup_key)
        self._ref = KeyedHash(citizen_ref_key)

    def citizen_ref(self, nik: str) -> str:
        """The pseudonymous reference other services know the citizen by."""
        return "c_" + self._ref.hex(nik)[:32]

    def lookup_hash(self, nik: str) -> str:
        """The keyed hash the registry finds a NIK by; also names unknown NIKs in the access log."""
        return self._lookup.hex(nik)

    def request_hash(self, canonical_request: bytes) -> str:
        """A keyed fingerprint of a request body for Idempotency-Key checks (bodies hold a NIK)."""
        return self._lookup.hex("idempotency:" + canonical_request.decode())
