"""Reporting read models. They hold codes and counts only: no personal data."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, MetaData, String, Table

from mpp.kit.db import add_runtime_tables

metadata = MetaData()

daily_counts = Table(
    "daily_counts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("agency", String(64), primary_key=True),
    Column("service_type", String(64), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

outbox, inbox, consumer_offsets = add_runtime_tables(metadata)
