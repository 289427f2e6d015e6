"""Notification tables: for now only the runtime tables (outbox, inbox, consumer offsets)."""

from __future__ import annotations

from sqlalchemy import MetaData

from mpp.kit.db import add_runtime_tables

metadata = MetaData()

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)
