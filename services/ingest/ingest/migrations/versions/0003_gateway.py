"""ingest: DTU connection state and the downlink mailbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_connections",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("gateway_id", sa.String(128), primary_key=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("remote_address", sa.String(64), nullable=True),
        sa.Column("instance", sa.String(128), nullable=False),
        sa.Column("connected_at", UtcDateTime(), nullable=True),
        sa.Column("disconnected_at", UtcDateTime(), nullable=True),
        sa.Column("last_seen_at", UtcDateTime(), nullable=True),
        sa.Column("frames_in", sa.Integer(), nullable=False),
        sa.Column("signal_csq", sa.Integer(), nullable=True),
    )
    op.create_table(
        "downlink_commands",
        sa.Column("command_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("meter_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_downlink_pending", "downlink_commands", ["state", "tenant_id", "meter_id"])


def downgrade() -> None:
    op.drop_table("downlink_commands")
    op.drop_table("gateway_connections")
