"""Identity settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mpp.identity.persistence.protection import decode_data_key
from mpp.kit.settings import ServiceSettings

# ------------------------------------------------------------------------------------------------
# DEVELOPMENT DEFAULTS ONLY. They are public (they are in this file): any deployment that holds real
# citizens' data must set MPP_IDENTITY_DATA_KEY, MPP_IDENTITY_LOOKUP_KEY and MPP_IDENTITY_CITIZEN_REF_KEY
# from its secret store. The service logs identity.keys.development_defaults at startup while any of
# them is in use.
# ------------------------------------------------------------------------------------------------
DEV_DATA_KEY = "REVWRUxPUE1FTlQtT05MWS1pZGVudGl0eS1rZXktMDE="  # base64("DEVELOPMENT-ONLY-identity-key-01")
DEV_LOOKUP_KEY = "DEVELOPMENT-ONLY-identity-lookup-key"
DEV_CITIZEN_REF_KEY = "dev-only-citizen-ref-key"  # the licensing service's development default too


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_IDENTITY_", extra="ignore")

    service_name: str = "identity"
    database_url: str = "sqlite+aiosqlite:///./.local/identity.db"
    http_port: int = 8101
    catalogue_file: Path | None = None
    data_key: SecretStr = Field(
        default=SecretStr(DEV_DATA_KEY),
        description="AES-256-GCM key for personal fields at rest: base64 of 32 random bytes.",
    )
    lookup_key: SecretStr = Field(
        default=SecretStr(DEV_LOOKUP_KEY),
        description="HMAC-SHA256 key of the NIK lookup hash (the unique index).",
    )
    citizen_ref_key: SecretStr = Field(
        default=SecretStr(DEV_CITIZEN_REF_KEY),
        description="HMAC-SHA256 key of citizen_ref, the pseudonym other services receive.",
    )
    registry_unavailable: bool = Field(
        default=False,
        description="Declare the civil registry unavailable (maintenance): verification requests are "
        "answered registry_unavailable, retryable, without a lookup.",
    )
    verifier_group: str = Field(
        default="mpp.identity.verifier",
        description="Consumer group answering verification requests (tests run their own).",
    )

    @field_validator("data_key")
    @classmethod
    def _data_key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        decode_data_key(value.get_secret_value())
        return value

    @field_validator("lookup_key", "citizen_ref_key")
    @classmethod
    def _key_not_empty(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("keyed-hash keys must have at least 16 characters")
        return value

    def development_keys(self) -> list[str]:
        """Names of the keys still at their public development default."""
        defaults = {
            "data_key": (self.data_key, DEV_DATA_KEY),
            "lookup_key": (self.lookup_key, DEV_LOOKUP_KEY),
            "citizen_ref_key": (self.citizen_ref_key, DEV_CITIZEN_REF_KEY),
        }
        return [name for name, (value, dev) in defaults.items() if value.get_secret_value() == dev]
