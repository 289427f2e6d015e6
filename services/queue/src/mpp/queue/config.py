"""Queue settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mpp.kit.settings import ServiceSettings
from mpp.queue.persistence.protection import DEV_DATA_KEY, decode_key


class QueueSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MPP_QUEUE_", extra="ignore")

    service_name: str = "queue"
    database_url: str = "sqlite+aiosqlite:///./.local/queue.db"
    http_port: int = 8103
    catalogue_file: Path | None = Field(
        default=None, description="The site's service catalogue (JSON); the demo catalogue when unset."
    )
    appointment_slot_minutes: int = Field(default=30, description="Length of an appointment slot.")
    appointment_quota_per_slot: int = Field(default=4, description="Bookings one slot takes.")
    appointment_quota_per_day: int | None = Field(
        default=None, description="Bookings one service type takes per day at a site (none: no daily cap)."
    )
    appointment_checkin_early_minutes: int = Field(default=30, description="Check-in opens this early.")
    appointment_checkin_late_minutes: int = Field(default=15, description="Check-in closes this late.")
    appointment_book_ahead_days: int = Field(default=30, description="How far ahead slots can be booked.")
    appointment_working_days_only: bool = Field(
        default=False, description="Offer slots on working days only (not on a Saturday opening)."
    )
    appointment_rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per service type overrides of the appointment settings above, e.g. "
        '{"polres.skck": {"slot_minutes": 15, "quota_per_slot": 6}}.',
    )
    appointment_sweep_seconds: float = Field(
        default=60.0, description="How often missed appointments are marked (0: never, in the background)."
    )
    day_close_seconds: float = Field(
        default=300.0,
        description="How often the day close looks for sites whose day is over (0: never, in the "
        "background; an operator can still run it).",
    )
    day_close_grace_minutes: int = Field(
        default=60,
        ge=0,
        le=720,
        description="How long after a site's closing time its day closes: waiting tickets are then "
        "cancelled, called ones marked no-show, open visits ended and open counters closed.",
    )
    citizen_ref_key: SecretStr | None = Field(
        default=None,
        description="Key of the pseudonymous citizen reference derived from a citizen's own token when "
        "they book (a keyed hash of the token subject); the HS256 token secret when unset.",
    )
    survey_window_hours: float = Field(
        default=168.0, description="How long after a completed service its SKM survey can be answered."
    )
    data_key: SecretStr = Field(
        default=SecretStr(DEV_DATA_KEY),
        description="AES-256-GCM key of complaint descriptions and contacts at rest: base64 of 32 bytes. "
        "The migration that encrypts stored complaints reads it from MPP_QUEUE_DATA_KEY too.",
    )
    visit_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=50,
        description="Group commit of kiosk visits: how long the first of concurrent visit requests waits "
        "for others to be written in the same transaction.",
    )
    visit_batch_max: int = Field(
        default=64,
        ge=1,
        le=500,
        description="Most visits written in one transaction (1: each visit in its own transaction).",
    )
    cycle_batch_max: int = Field(
        default=16,
        ge=1,
        le=200,
        description="Group commit of the counters' cycle on PostgreSQL: most call-next, start, complete, "
        "recall and no-show requests run together in one transaction (1: each in its own transaction).",
    )
    cycle_batch_writers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="How many such batches are written at once, each on its own connection.",
    )
    http_fast_routes: bool = Field(
        default=True,
        description="Answer the counters' cycle (call-next, start, complete, recall, no-show) without "
        "FastAPI's routing and dependency solving: the same answers for less CPU per cycle (false: through "
        "FastAPI like every other route).",
    )
    complaint_first_response_days: int = Field(
        default=3,
        ge=1,
        description="Working days to a complaint's first response (SP4N-LAPOR: 3; local SOPs often 2).",
    )

    @field_validator("data_key")
    @classmethod
    def _data_key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value())
        return value
