"""Queue settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings


class QueueSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_QUEUE_", extra="ignore")

    service_name: str = "queue"
    database_url: str = "sqlite+aiosqlite:///./.local/queue.db"
    http_port: int = 8103
    catalogue_file: Path | None = Field(
        default=None, description="The site's service catalogue (JSON); the demo catalogue when unset."
    )
