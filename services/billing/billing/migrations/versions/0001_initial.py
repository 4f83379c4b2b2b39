"""billing: inbox, outbox and the meter consumption projection

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
        "meter_consumption",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(8), nullable=True),
        sa.Column("total", ExactDecimal(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("last_measured_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meter_consumption")
    drop_runtime_tables(op)
