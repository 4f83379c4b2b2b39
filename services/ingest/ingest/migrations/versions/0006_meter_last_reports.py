"""ingest: what ingest last heard from each meter — its latest reading and device status

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meter_last_reports",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(128), primary_key=True),
        sa.Column("reading_received_at", UtcDateTime(), nullable=True),
        sa.Column("reading_measured_at", UtcDateTime(), nullable=True),
        sa.Column("status_reported_at", UtcDateTime(), nullable=True),
        sa.Column("valve", sa.String(16), nullable=True),
        sa.Column("relay", sa.String(16), nullable=True),
        sa.Column("battery_level", sa.String(8), nullable=True),
        sa.Column("battery_voltage_v", ExactDecimal(), nullable=True),
        sa.Column("battery_remaining_percent", sa.Integer(), nullable=True),
        sa.Column("alarms", sa.String(256), nullable=True),
        sa.Column("clock_drift_s", sa.Integer(), nullable=True),
        sa.Column("signal_csq", sa.Integer(), nullable=True),
    )
    # The readings accepted so far say when each meter was last read; past device statuses were only
    # published, not kept, so a meter's status stays unknown until it reports again.
    op.execute("INSERT INTO meter_last_reports (tenant_id, meter_id, reading_received_at, reading_measured_at) "
               "SELECT tenant_id, meter_id, MAX(received_at), MAX(measured_at) FROM accepted_readings "
               "GROUP BY tenant_id, meter_id")


def downgrade() -> None:
    op.drop_table("meter_last_reports")
