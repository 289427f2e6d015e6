"""Client settings for brokers that require TLS and/or SASL."""

from __future__ import annotations

import ssl

import pytest

from mpp.kit.kafka import KafkaSecurity
from mpp.kit.settings import ServiceSettings

pytestmark = pytest.mark.unit


class TestKafkaSecurity:
    def test_plaintext_by_default(self) -> None:
        assert KafkaSecurity.from_settings(ServiceSettings()).options() == {"security_protocol": "PLAINTEXT"}

    def test_sasl_over_tls_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        monkeypatch.setenv("KAFKA_SASL_USERNAME", "mpp-licensing")
        monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")

        options = KafkaSecurity.from_settings(ServiceSettings()).options()

        assert options["security_protocol"] == "SASL_SSL"
        assert (
            options["sasl_mechanism"],
            options["sasl_plain_username"],
            options["sasl_plain_password"],
        ) == (
            "SCRAM-SHA-512",
            "mpp-licensing",
            "s3cret",
        )
        assert isinstance(options["ssl_context"], ssl.SSLContext)

    def test_sasl_without_credentials_is_refused_with_a_clear_message(self) -> None:
        with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
            KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN").options()

    def test_an_unknown_protocol_is_refused_at_startup(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL_PLEASE")
        with pytest.raises(ValueError, match=r"kafka_security_protocol|KAFKA_SECURITY_PROTOCOL"):
            ServiceSettings()
