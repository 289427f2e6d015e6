"""Licensing settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings


class LicensingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_LICENSING_", extra="ignore")

    service_name: str = "licensing"
    database_url: str = "sqlite+aiosqlite:///./.local/licensing.db"
    http_port: int = 8102
    catalogue_file: Path | None = None
    verification_results_group: str = "mpp.licensing.verification-results"
    sla_watch_enabled: bool = True
    sla_watch_interval_s: float = 60.0
