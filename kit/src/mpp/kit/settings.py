"""Settings shared by every service. Each service subclasses :class:`ServiceSettings` once.

Shared infrastructure is read from unprefixed variables (``KAFKA_BOOTSTRAP_SERVERS``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``MPP_JWT_*``); service-specific values use the service's prefix,
e.g. ``MPP_LICENSING_DATABASE_URL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Common settings; subclasses set ``model_config = SettingsConfigDict(env_prefix="MPP_<NAME>_")``."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "mpp"
    site: str = Field(default="mpp-kota-sukamaju", description="Default MPP site code of this deployment.")
    database_url: str = Field(default="sqlite+aiosqlite:///./.local/mpp.db")
    database_pool_size: int = 10
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        validation_alias=AliasChoices("KAFKA_REPLICATION_FACTOR", "kafka_replication_factor"),
        description="Replication factor of topics this service creates (3 in production).",
    )
    kafka_create_topics: bool = Field(
        default=True,
        validation_alias=AliasChoices("KAFKA_CREATE_TOPICS", "kafka_create_topics"),
        description="Create missing registry topics at startup; turn off where topics are provisioned.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol"),
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "kafka_sasl_mechanism")
    )
    kafka_sasl_username: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "kafka_sasl_username")
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "kafka_sasl_password")
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SSL_CAFILE", "kafka_ssl_cafile"),
        description="CA bundle that signed the brokers' certificates (system CAs when unset).",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_max_body_bytes: int = 1_048_576
    http_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes sharing the HTTP port (one per core); each runs the whole service.",
    )
    log_level: str = "INFO"
    log_json: bool = True
    loop_block_threshold_s: float = Field(
        default=0.25,
        ge=0,
        description="Log the event loop's stack when it has not come round for this long (0: do not watch).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"),
    )
    jwt_hs256_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MPP_JWT_HS256_SECRET", "jwt_hs256_secret"),
        description="Shared secret for development tokens (HS256). Leave unset in production.",
    )
    jwt_jwks_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("MPP_JWT_JWKS_FILE", "jwt_jwks_file"),
        description="JSON Web Key Set of the OIDC provider (RS256/ES256 public keys).",
    )
    jwt_issuer: str = Field(default="mpp-dev", validation_alias=AliasChoices("MPP_JWT_ISSUER", "jwt_issuer"))
    jwt_audience: str = Field(
        default="mpp", validation_alias=AliasChoices("MPP_JWT_AUDIENCE", "jwt_audience")
    )
    outbox_batch_size: int = 2000
    outbox_poll_interval_s: float = 0.05
    outbox_coalesce_s: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="After a batch that was not full (or a wakeup), the relay waits this long so that the "
        "commits right behind it join its next batch (0: straight back).",
    )
    consumer_max_records: int = 2000
    consumer_enabled: bool = True
    relay_enabled: bool = True
