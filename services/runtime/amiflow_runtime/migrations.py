"""Migration steps every service's first revision shares (the runtime's inbox and outbox tables)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from amiflow_runtime.db import UtcDateTime


def create_runtime_tables(op: Any) -> None:
    """Create inbox and outbox as of runtime schema 1; later changes come as new revisions."""
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("message_key", sa.LargeBinary(), nullable=False),
        sa.Column("message_value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )


def drop_runtime_tables(op: Any) -> None:
    """Undo create_runtime_tables."""
    op.drop_table("outbox")
    op.drop_table("inbox")
