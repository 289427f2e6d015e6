"""Alembic helpers: each service keeps its own history in ``services/<name>/migrations``.

``upgrade(engine, script_location)`` applies a service's migrations on an async engine and
``downgrade(engine, script_location, revision)`` reverts them; the service's ``env.py`` calls
:func:`run_env` with its metadata.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from mpp.kit.db import create_engine

MIGRATION_LOCK_KEY = 0x4D5050  # "MPP": one key per database is enough, each service has its own


def _config(script_location: Path, connection: Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, script_location: Path, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on the engine's database."""

    def _run(sync_conn: Connection) -> None:
        command.upgrade(_config(script_location, sync_conn), revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together migrate one at a time; the lock ends with the transaction.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.run_sync(_run)


async def downgrade(engine: AsyncEngine, script_location: Path, revision: str) -> None:
    """Revert migrations down to ``revision`` on the engine's database (an operator's way back)."""

    def _run(sync_conn: Connection) -> None:
        command.downgrade(_config(script_location, sync_conn), revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.run_sync(_run)


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's Alembic ``env.py``: online migrations on a given or configured connection."""
    config = context.config
    connection: Connection | None = config.attributes.get("connection")

    def do_run(conn: Connection) -> None:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    if connection is not None:
        do_run(connection)
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass a connection or set sqlalchemy.url")

    async def _online() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(_online())


def runtime_tables_v1(op: Any) -> None:
    """Create the runtime tables (outbox, inbox, consumer offsets) in a service's first migration."""
    import sqlalchemy as sa

    op.create_table(
        "outbox",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["seq"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("offset", sa.BigInteger, nullable=False),
    )


def inbox_ids_as_uuid(op: Any) -> None:
    """Keep the inbox's event ids as PostgreSQL ``uuid`` (16 bytes) rather than text (37): a smaller key
    to compare, index and write for every event a consumer claims. A rewrite of the table under an
    exclusive lock (a few seconds per million entries); SQLite keeps text."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inbox ALTER COLUMN event_id TYPE uuid USING event_id::uuid")


def inbox_ids_as_text(op: Any) -> None:
    """Undo :func:`inbox_ids_as_uuid` (the canonical text form, as before)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE inbox ALTER COLUMN event_id TYPE varchar(36) USING event_id::text")
