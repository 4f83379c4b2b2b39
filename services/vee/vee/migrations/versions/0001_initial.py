"""vee: inbox, outbox, register baselines and validated readings

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime
from amiflow_runtime.migrations import create_runtime_tables, drop_runtime_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables(op)
    op.create_table(
        "register_baselines",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("measured_at", UtcDateTime(), nullable=False),
        sa.Column("value", ExactDecimal(), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
    )
    op.create_table(
        "validated_readings",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("meter_id", sa.String(64), nullable=False),
        sa.Column("measured_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("consumption", ExactDecimal(), nullable=True),
        sa.Column("consumption_unit", sa.String(8), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("registers", sa.Text(), nullable=False),
        sa.Column("source_event_id", sa.String(36), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_validated_readings_meter_time", "validated_readings",
                    ["tenant_id", "meter_id", "measured_at"])


def downgrade() -> None:
    op.drop_table("validated_readings")
    op.drop_table("register_baselines")
    drop_runtime_tables(op)
