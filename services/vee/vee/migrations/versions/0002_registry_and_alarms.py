"""vee: the materialised meter registry and the alarm read model

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meter_registry",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "alarms",
        sa.Column("alarm_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("alarm_type", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("detected_at", UtcDateTime(), nullable=False),
        sa.Column("observed_value", ExactDecimal(), nullable=True),
        sa.Column("threshold_value", ExactDecimal(), nullable=True),
        sa.Column("value_unit", sa.String(16), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.Column("clear_reason", sa.String(32), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("ack_note", sa.Text(), nullable=True),
    )
    op.create_index("ix_alarms_tenant_state_time", "alarms", ["tenant_id", "state", "detected_at"])


def downgrade() -> None:
    op.drop_table("alarms")
    op.drop_table("meter_registry")
