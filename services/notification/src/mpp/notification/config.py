"""Notification settings: the only reader of the environment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings
from mpp.notification.persistence.protection import decode_key

# Development only: a fixed key so the local platform's contacts survive restarts. Logged as such.
DEV_DATA_KEY = "bXBwLW5vdGlmaWNhdGlvbi1kZXYta2V5LTMyYnl0ZXM="
DEV_WEBHOOK_SECRET = "mpp-notification-dev-webhook-secret"  # noqa: S105 - development only

log = logging.getLogger(__name__)


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="MPP_NOTIFICATION_", extra="ignore", hide_input_in_errors=True
    )

    service_name: str = "notification"
    database_url: str = "sqlite+aiosqlite:///./.local/notification.db"
    http_port: int = 8104
    catalogue_file: Path | None = None
    trigger_file: Path | None = Field(
        default=None, description="Trigger configuration (JSON); packaged default."
    )
    dispatcher_group: str = "mpp.notification.dispatcher"
    data_key: SecretStr = Field(
        default=SecretStr(DEV_DATA_KEY), description="AES-256 key of contacts (base64)."
    )
    webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)

    dispatcher_enabled: bool = True
    dispatch_batch_size: int = Field(default=200, ge=1)
    dispatch_concurrency: int = Field(default=128, ge=1)
    dispatch_unkeyed_concurrency: int = Field(
        default=4,
        ge=1,
        description="Calls in flight to a provider without an idempotency key (SMTP): each is a message "
        "of unknown outcome if the process dies.",
    )
    dispatch_poll_interval_s: float = Field(default=0.2, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)
    provider_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="HTTP providers: connection (TCP and TLS) and each wait for the answer; a whole call "
        "is bounded by three times this.",
    )
    provider_ca_file: str | None = Field(
        default=None,
        description="CA bundle of the HTTP providers' certificates (default: certifi's bundle).",
    )

    whatsapp_provider: Literal["loopback", "cloud", "none"] = "loopback"
    whatsapp_base_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_phone_number_id: str = ""
    whatsapp_token: SecretStr = SecretStr("")
    whatsapp_rate_per_s: float = Field(default=50.0, gt=0)
    whatsapp_burst: int = Field(default=50, ge=1)

    sms_provider: Literal["loopback", "http", "none"] = "loopback"
    sms_url: str = ""
    sms_token: SecretStr = SecretStr("")
    sms_sender: str = "MPP"
    sms_rate_per_s: float = Field(default=10.0, gt=0)
    sms_burst: int = Field(default=10, ge=1)

    email_provider: Literal["loopback", "smtp", "none"] = "loopback"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: str | None = Field(default=None, description="CA bundle of the SMTP server (system CAs).")
    smtp_tls_verify: bool = Field(
        default=True,
        description="Verify the SMTP server's certificate and name; false only for a relay whose "
        "certificate no CA signed (the connection stays encrypted, the server unauthenticated).",
    )
    email_from: str = "MPP <noreply@mpp.invalid>"
    email_rate_per_s: float = Field(default=5.0, gt=0)
    email_burst: int = Field(default=5, ge=1)

    @field_validator("data_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value())
        return value

    def warn_development_secrets(self) -> None:
        for name, value, dev in (
            ("data_key", self.data_key, DEV_DATA_KEY),
            ("webhook_secret", self.webhook_secret, DEV_WEBHOOK_SECRET),
        ):
            if value.get_secret_value() == dev:
                log.warning("notification.config.development_secret", extra={"setting": name})
