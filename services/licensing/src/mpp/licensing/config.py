"""Licensing settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings


class LicensingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_LICENSING_", extra="ignore")

    service_name: str = "licensing"
    database_url: str = "sqlite+aiosqlite:///./.local/licensing.db"
    http_port: int = 8102
    catalogue_file: Path | None = None
    citizen_ref_key: SecretStr = SecretStr("dev-only-citizen-ref-key")
    sla_watch_enabled: bool = True
    sla_watch_interval_s: float = 60.0
