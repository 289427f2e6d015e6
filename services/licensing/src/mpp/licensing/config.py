"""Licensing settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings
from mpp.licensing.persistence.protection import decode_key

# DEVELOPMENT DEFAULT ONLY: it is public (it is in this file). Deployments that take real applications set
# MPP_LICENSING_DATA_KEY from their secret store; the service logs licensing.keys.development_default
# while this one is in use.
DEV_DATA_KEY = "REVWRUxPUE1FTlQtT05MWS1saWNlbnNpbmcta2V5LTE="  # base64("DEVELOPMENT-ONLY-licensing-key-1")


class LicensingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_LICENSING_", extra="ignore")

    service_name: str = "licensing"
    database_url: str = "sqlite+aiosqlite:///./.local/licensing.db"
    http_port: int = 8102
    catalogue_file: Path | None = None
    verification_results_group: str = "mpp.licensing.verification-results"
    sla_watch_enabled: bool = True
    sla_watch_interval_s: float = 60.0
    data_key: SecretStr = Field(
        default=SecretStr(DEV_DATA_KEY),
        description="AES-256-GCM key of pending NIK verification requests at rest: base64 of 32 bytes.",
    )
    verification_sweep_enabled: bool = True
    verification_sweep_interval_s: float = Field(default=15.0, gt=0)
    verification_timeout_s: float = Field(
        default=300.0, gt=0, description="Ask identity again when a request stays unanswered this long."
    )
    verification_retry_base_s: float = Field(
        default=30.0, gt=0, description="First wait after a retryable refusal (registry_unavailable)."
    )
    verification_retry_max_s: float = Field(
        default=1800.0, gt=0, description="Longest wait between attempts."
    )
    verification_max_attempts: int = Field(
        default=8, ge=1, description="Requests per round before the application waits for an officer."
    )

    @field_validator("data_key")
    @classmethod
    def _data_key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value())
        return value
