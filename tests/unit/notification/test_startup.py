"""Settings refuse unusable secrets at startup, naming the setting and never echoing the value."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from mpp.notification.config import NotificationSettings
from mpp.notification.persistence.protection import ContactCipher, UndecryptableContact, decode_key


def test_a_data_key_that_is_not_32_bytes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    short = base64.b64encode(b"too-short-key").decode()
    monkeypatch.setenv("MPP_NOTIFICATION_DATA_KEY", short)
    with pytest.raises(ValidationError, match="must decode to 32 bytes, not 13") as caught:
        NotificationSettings()
    assert short not in str(caught.value)


def test_a_ciphertext_moved_to_another_citizen_does_not_decrypt() -> None:
    cipher = ContactCipher(decode_key(base64.b64encode(bytes(range(32))).decode()))
    sealed = cipher.seal("+6281234567890", column="phone", citizen_ref="c_aaaaaaaaaaaa")
    assert b"6281234567890" not in sealed
    assert cipher.open(sealed, column="phone", citizen_ref="c_aaaaaaaaaaaa") == "+6281234567890"
    with pytest.raises(UndecryptableContact):
        cipher.open(sealed, column="phone", citizen_ref="c_bbbbbbbbbbbb")
    with pytest.raises(UndecryptableContact):
        cipher.open(sealed, column="email", citizen_ref="c_aaaaaaaaaaaa")
