"""The pending verification request (it holds the NIK) is sealed at rest and bound to its application."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from mpp.licensing.config import LicensingSettings
from mpp.licensing.persistence.protection import RequestSealer, UnreadableRequest, decode_key

KEY = base64.b64encode(bytes(range(32))).decode()
REQUEST = b'{"request_id":"r-1","nik":"3201014509900001"}'


def test_a_sealed_request_opens_back_for_its_application_only() -> None:
    sealer = RequestSealer(decode_key(KEY))

    sealed = sealer.seal("app-1", REQUEST)

    assert b"3201014509900001" not in sealed
    assert sealer.open("app-1", sealed) == REQUEST
    with pytest.raises(UnreadableRequest):
        sealer.open("app-2", sealed)


def test_sealing_twice_gives_different_values() -> None:
    sealer = RequestSealer(decode_key(KEY))

    assert sealer.seal("app-1", REQUEST) != sealer.seal("app-1", REQUEST)


def test_another_key_or_a_damaged_value_does_not_open() -> None:
    sealed = RequestSealer(decode_key(KEY)).seal("app-1", REQUEST)
    other = RequestSealer(bytes(32))

    with pytest.raises(UnreadableRequest):
        other.open("app-1", sealed)
    with pytest.raises(UnreadableRequest):
        RequestSealer(decode_key(KEY)).open("app-1", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(UnreadableRequest):
        RequestSealer(decode_key(KEY)).open("app-1", b"\x09" + sealed[1:])
    with pytest.raises(UnreadableRequest):
        RequestSealer(decode_key(KEY)).open("app-1", sealed[:20])


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_data_key_that_is_not_32_bytes_of_base64_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        LicensingSettings(data_key=value)  # type: ignore[arg-type]
