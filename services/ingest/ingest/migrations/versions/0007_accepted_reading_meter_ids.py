"""ingest: accepted_readings.meter_id as long as a ReadingReceived's meter id (128)

A reading of a meter whose id had 65 to 128 characters passed validation and then failed the whole batch's insert
on PostgreSQL (StringDataRightTruncation); SQLite never enforced the length.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accepted_readings") as table:
        table.alter_column("meter_id", type_=sa.String(128), existing_type=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("accepted_readings") as table:
        table.alter_column("meter_id", type_=sa.String(64), existing_type=sa.String(128), existing_nullable=False)
