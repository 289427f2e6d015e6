"""Reporting settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_REPORTING_", extra="ignore")

    service_name: str = "reporting"
    database_url: str = "sqlite+aiosqlite:///./.local/reporting.db"
    http_port: int = 8105
    catalogue_file: Path | None = None
    consumer_group: str = "mpp.reporting.projector"
    consumer_max_records: int = 5000
    projection_lag_interval_s: float = 10.0
    """How often the projection's lag per partition is read from the broker (0: never)."""
    rebuild_max_records: int = 20_000
    """Records per fetched batch (and per transaction) during a rebuild."""
