"""Notification settings: the only reader of the environment."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_NOTIFICATION_", extra="ignore")

    service_name: str = "notification"
    database_url: str = "sqlite+aiosqlite:///./.local/notification.db"
    http_port: int = 8104
