"""Identity settings: the only reader of the environment."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_IDENTITY_", extra="ignore")

    service_name: str = "identity"
    database_url: str = "sqlite+aiosqlite:///./.local/identity.db"
    http_port: int = 8101
