"""vee: per-meter series state, published points with every version, consumption buckets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The walking skeleton's baseline validation gives way to the full series (never populated in production).
    op.drop_table("validated_readings")
    op.drop_table("register_baselines")
    op.create_table(
        "meter_series",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("series_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("current_meter_id", sa.String(128), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "series_points",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("series_id", sa.String(128), primary_key=True),
        sa.Column("measured_at", UtcDateTime(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("meter_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("consumption", ExactDecimal(), nullable=True),
        sa.Column("unit", sa.String(8), nullable=True),
        sa.Column("previous_at", UtcDateTime(), nullable=True),
        sa.Column("registers", sa.Text(), nullable=False),
        sa.Column("checks", sa.Text(), nullable=False),
        sa.Column("edit", sa.Text(), nullable=True),
        sa.Column("supersedes", sa.String(36), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "consumption_buckets",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("series_id", sa.String(128), primary_key=True),
        sa.Column("granularity", sa.String(8), primary_key=True),
        sa.Column("bucket_start", UtcDateTime(), primary_key=True),
        sa.Column("bucket_end", UtcDateTime(), nullable=False),
        sa.Column("consumption", ExactDecimal(), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("all_actual", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


    op.create_table(
        "unplaced_reads",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("unplaced_reads")
    op.drop_table("consumption_buckets")
    op.drop_table("series_points")
    op.drop_table("meter_series")
