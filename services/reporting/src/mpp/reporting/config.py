"""Reporting settings: the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
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
    projector_lock_check_s: float = Field(default=5.0, gt=0)
    """How often a running projector checks that it still holds the projector lock (and takes it again
    after a database restart), so a rebuild keeps refusing to start beside it."""
    rebuild_max_records: int = 50_000
    """Records per fetched batch (and per transaction) during a rebuild: larger batches fold more events
    into each row they write (the process holds a few hundred megabytes at 50,000)."""
    modes: str = Field(
        default="site",
        description="What this deployment does: `site` (project local events, publish daily summaries), "
        "`national` (aggregate the summaries of every MPP), or `site,national`.",
    )
    summary_sites: str = Field(
        default="",
        description="Comma-separated sites whose daily summaries this deployment publishes in site mode "
        "(empty: the deployment's own `site`).",
    )
    summary_publish: bool = Field(
        default=True,
        description="Publish the summaries (site mode). Turned off, changed days are still noted and are "
        "published once it is turned on again (e.g. while the read models are rebuilt).",
    )
    summary_interval_s: float = Field(
        default=300.0, gt=0, description="How often provisional and final summaries are published."
    )
    summary_close_delay_s: float = Field(
        default=900.0, ge=0, description="After the site's local midnight, when its day is final."
    )
    rollup_consumer_group: str = "mpp.reporting.rollup"
    rollup_sites: str = Field(
        default="",
        description="Comma-separated sites whose summaries a national deployment keeps (empty: every site), "
        "e.g. a province's MPPs for a provincial dashboard.",
    )

    @field_validator("modes")
    @classmethod
    def _known_modes(cls, value: str) -> str:
        modes = {m.strip() for m in value.split(",") if m.strip()}
        if not modes or not modes <= {"site", "national"}:
            raise ValueError("modes must be site, national or site,national")
        return ",".join(sorted(modes, reverse=True))

    @property
    def site_mode(self) -> bool:
        return "site" in self.modes.split(",")

    @property
    def national_mode(self) -> bool:
        return "national" in self.modes.split(",")

    @property
    def rolled_up_sites(self) -> frozenset[str] | None:
        sites = frozenset(s.strip() for s in self.rollup_sites.split(",") if s.strip())
        return sites or None

    @property
    def published_sites(self) -> frozenset[str]:
        sites = frozenset(s.strip() for s in self.summary_sites.split(",") if s.strip())
        return sites or frozenset({self.site})
