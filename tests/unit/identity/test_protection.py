"""Personal data at rest: AES-GCM field encryption and the keyed hashes that find and name citizens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from mpp.identity.persistence.protection import (
    CitizenKeys,
    FieldCipher,
    KeyedHash,
    UndecryptableField,
    decode_data_key,
)

pytestmark = pytest.mark.unit

DATA_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NIK = "3298014507850003"
CONTEXT = "citizens.nik:c_00000000000000000000000000000001"


def _keys(**overrides: bytes) -> CitizenKeys:
    keys = {
        "data_key": DATA_KEY,
        "lookup_key": b"lookup-key-for-tests",
        "citizen_ref_key": b"ref-key-for-tests",
    }
    return CitizenKeys(**(keys | overrides))


class TestFieldCipher:
    def test_round_trips_a_value(self) -> None:
        cipher = FieldCipher(DATA_KEY)

        stored = cipher.encrypt("Warga Uji 0001", context=CONTEXT)

        assert cipher.decrypt(stored, context=CONTEXT) == "Warga Uji 0001"

    def test_the_ciphertext_does_not_contain_the_plaintext(self) -> None:
        stored = FieldCipher(DATA_KEY).encrypt(NIK, context=CONTEXT)

        assert NIK.encode() not in stored

    def test_the_same_value_encrypts_differently_every_time(self) -> None:
        cipher = FieldCipher(DATA_KEY)

        stored = [cipher.encrypt(NIK, context=CONTEXT) for _ in range(50)]

        assert len(set(stored)) == 50
        assert len({s[1:13] for s in stored}) == 50  # a fresh nonce for each record

    def test_a_ciphertext_moved_to_another_record_does_not_decrypt(self) -> None:
        cipher = FieldCipher(DATA_KEY)
        stored = cipher.encrypt(NIK, context=CONTEXT)

        with pytest.raises(UndecryptableField):
            cipher.decrypt(stored, context="citizens.nik:c_00000000000000000000000000000002")

    def test_a_ciphertext_moved_to_another_column_does_not_decrypt(self) -> None:
        cipher = FieldCipher(DATA_KEY)
        stored = cipher.encrypt(NIK, context=CONTEXT)

        with pytest.raises(UndecryptableField):
            cipher.decrypt(stored, context=CONTEXT.replace("nik", "kk"))

    def test_an_altered_ciphertext_does_not_decrypt(self) -> None:
        cipher = FieldCipher(DATA_KEY)
        stored = bytearray(cipher.encrypt(NIK, context=CONTEXT))
        stored[-1] ^= 0x01

        with pytest.raises(UndecryptableField):
            cipher.decrypt(bytes(stored), context=CONTEXT)

    def test_another_key_does_not_decrypt(self) -> None:
        stored = FieldCipher(DATA_KEY).encrypt(NIK, context=CONTEXT)

        with pytest.raises(UndecryptableField):
            FieldCipher(OTHER_KEY).decrypt(stored, context=CONTEXT)

    @pytest.mark.parametrize("stored", [b"", b"\x01", b"\x02" + bytes(40)])
    def test_garbage_does_not_decrypt(self, stored: bytes) -> None:
        with pytest.raises(UndecryptableField):
            FieldCipher(DATA_KEY).decrypt(stored, context=CONTEXT)

    def test_refuses_a_key_that_is_not_256_bits(self) -> None:
        with pytest.raises(ValueError, match="32-byte"):
            FieldCipher(bytes(16))


class TestDecodeDataKey:
    def test_decodes_base64_of_32_bytes(self) -> None:
        assert decode_data_key(base64.b64encode(DATA_KEY).decode()) == DATA_KEY

    @pytest.mark.parametrize(
        ("encoded", "problem"),
        [("not base64!", "base64"), (base64.b64encode(bytes(16)).decode(), "32 bytes, not 16")],
    )
    def test_refuses_anything_else_naming_the_problem(self, encoded: str, problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            decode_data_key(encoded)


class TestKeyedHashes:
    def test_the_lookup_hash_is_stable(self) -> None:
        assert _keys().lookup_hash(NIK) == _keys().lookup_hash(NIK)

    def test_the_lookup_hash_is_hmac_sha256_under_the_lookup_key(self) -> None:
        expected = hmac.new(b"lookup-key-for-tests", NIK.encode(), hashlib.sha256).hexdigest()

        assert _keys().lookup_hash(NIK) == expected

    def test_the_lookup_hash_depends_on_the_key(self) -> None:
        assert _keys().lookup_hash(NIK) != _keys(lookup_key=b"another-lookup-key").lookup_hash(NIK)

    def test_different_niks_hash_differently(self) -> None:
        assert _keys().lookup_hash(NIK) != _keys().lookup_hash("3298014507850004")

    def test_citizen_ref_is_c_and_32_hex_digits_of_its_own_key(self) -> None:
        ref = _keys().citizen_ref(NIK)

        assert re.fullmatch(r"c_[0-9a-f]{32}", ref)
        assert ref == "c_" + hmac.new(b"ref-key-for-tests", NIK.encode(), hashlib.sha256).hexdigest()[:32]

    def test_citizen_ref_and_lookup_hash_are_unrelated(self) -> None:
        keys = _keys()

        assert keys.citizen_ref(NIK)[2:] not in keys.lookup_hash(NIK)

    def test_an_empty_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match="non-empty"):
            KeyedHash(b"")
