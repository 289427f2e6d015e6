"""Appointments, and the seats taken per slot and per day.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("booking_code", sa.String(16), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("slot_start", TZ, nullable=False),
        sa.Column("slot_end", TZ, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("citizen_ref", sa.String(64), nullable=False),
        sa.Column("booker", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("booked_at", TZ, nullable=False),
        sa.Column("cancelled_at", TZ),
        sa.Column("cancelled_by", sa.String(16)),
        sa.Column("checked_in_at", TZ),
        sa.Column("missed_at", TZ),
        sa.Column("visit_id", sa.String(36)),
        sa.Column("ticket_id", sa.String(36)),
        sa.UniqueConstraint("booking_code", name="uq_appointments_booking_code"),
    )
    op.create_index("ix_appointments_state_slot", "appointments", ["state", "slot_start"])
    op.create_index("ix_appointments_site_day", "appointments", ["site", "day", "service_type"])
    op.create_index("ix_appointments_citizen", "appointments", ["citizen_ref", "service_type", "day"])
    op.create_table(
        "appointment_slots",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
        sa.Column("slot_start", TZ, primary_key=True),
        sa.Column("booked", sa.Integer, nullable=False),
    )
    op.create_table(
        "appointment_days",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("service_type", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("booked", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("appointment_days")
    op.drop_table("appointment_slots")
    op.drop_index("ix_appointments_citizen", table_name="appointments")
    op.drop_index("ix_appointments_site_day", table_name="appointments")
    op.drop_index("ix_appointments_state_slot", table_name="appointments")
    op.drop_table("appointments")
