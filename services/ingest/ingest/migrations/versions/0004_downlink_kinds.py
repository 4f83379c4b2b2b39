"""ingest: the downlink mailbox also holds read-now, time-sync and set-parameter commands

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only valve and relay commands carry an action. A parameter write names its parameter and value.
    with op.batch_alter_table("downlink_commands") as batch:  # SQLite rebuilds the table
        batch.alter_column("action", existing_type=sa.String(32), nullable=True)
        batch.add_column(sa.Column("parameter_name", sa.String(128), nullable=True))
        batch.add_column(sa.Column("parameter_value", sa.Text(), nullable=True))


def downgrade() -> None:
    # The old mailbox knows only valve and relay commands; the others cannot be kept in it.
    op.execute("DELETE FROM downlink_commands WHERE kind NOT IN ('valve', 'relay')")
    with op.batch_alter_table("downlink_commands") as batch:  # SQLite rebuilds the table
        batch.drop_column("parameter_value")
        batch.drop_column("parameter_name")
        batch.alter_column("action", existing_type=sa.String(32), nullable=False)
