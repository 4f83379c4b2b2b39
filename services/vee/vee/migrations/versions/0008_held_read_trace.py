"""vee: a held reading keeps the trace it arrived in

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The W3C trace context of the reading's consume span, as Kafka headers (JSON): once the registry names
    # the meter, the reading is validated in its own trace, not in the registry event's.
    op.add_column("unplaced_reads", sa.Column("trace", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unplaced_reads") as batch:  # SQLite rebuilds the table
        batch.drop_column("trace")
