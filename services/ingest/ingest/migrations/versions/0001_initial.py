"""ingest: inbox, outbox and the accepted-readings idempotency record

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import UtcDateTime
from amiflow_runtime.migrations import create_runtime_tables, drop_runtime_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables(op)
    op.create_table(
        "accepted_readings",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("measured_at", UtcDateTime(), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("accepted_readings")
    drop_runtime_tables(op)
