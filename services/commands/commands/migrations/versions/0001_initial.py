"""commands: inbox, outbox and account supply intents

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
        "account_supply",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("intent", sa.String(16), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("meter_ids", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_supply")
    drop_runtime_tables(op)
