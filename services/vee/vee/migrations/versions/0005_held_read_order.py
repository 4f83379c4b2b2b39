"""vee: held readings of unknown meters remember the order they arrived in

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Placed in arrival order once the registry names the meter: a read placed out of order would turn
    # a short gap into a long one and change how it is estimated.
    op.add_column("unplaced_reads", sa.Column("arrival", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("unplaced_reads") as batch:  # SQLite rebuilds the table
        batch.drop_column("arrival")
