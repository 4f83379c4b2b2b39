"""vee: what the operator console reads — a day of every meter, totals per meter, coverage per bucket

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 1000


def upgrade() -> None:
    # Seconds covered and estimated per bucket: a chart shades the estimated share. Buckets written
    # before stay null until their next change (all-actual ones are known to have none estimated).
    op.add_column("consumption_buckets", sa.Column("covered_s", ExactDecimal(), nullable=True))
    op.add_column("consumption_buckets", sa.Column("estimated_s", ExactDecimal(), nullable=True))
    op.add_column("meter_registry", sa.Column("utility", sa.String(16), nullable=True))
    op.add_column("meter_registry", sa.Column("unit", sa.String(8), nullable=True))
    _copy_utility_and_unit_out_of_the_state()
    op.create_index("ix_series_points_tenant_time", "series_points", ["tenant_id", "measured_at"])
    op.create_index("ix_meter_series_tenant_meter", "meter_series", ["tenant_id", "current_meter_id"])
    op.create_index("ix_alarms_tenant_time", "alarms", ["tenant_id", "detected_at"])


def _copy_utility_and_unit_out_of_the_state() -> None:
    # In Python, not SQL: the two databases spell JSON extraction differently. One row per meter.
    registry = sa.table("meter_registry", sa.column("tenant_id", sa.String), sa.column("meter_id", sa.String),
                        sa.column("state", sa.Text), sa.column("utility", sa.String), sa.column("unit", sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(registry.c.tenant_id, registry.c.meter_id, registry.c.state)).all()
    update = (sa.update(registry)
              .where(registry.c.tenant_id == sa.bindparam("t"), registry.c.meter_id == sa.bindparam("m"))
              .values(utility=sa.bindparam("u"), unit=sa.bindparam("n")))
    for first in range(0, len(rows), _BACKFILL_BATCH):
        batch = []
        for row in rows[first:first + _BACKFILL_BATCH]:
            state = json.loads(row.state)
            batch.append({"t": row.tenant_id, "m": row.meter_id, "u": state["utility"], "n": state["unit"]})
        bind.execute(update, batch)


def downgrade() -> None:
    op.drop_index("ix_alarms_tenant_time", "alarms")
    op.drop_index("ix_meter_series_tenant_meter", "meter_series")
    op.drop_index("ix_series_points_tenant_time", "series_points")
    with op.batch_alter_table("meter_registry") as batch:  # SQLite rebuilds the table
        batch.drop_column("unit")
        batch.drop_column("utility")
    with op.batch_alter_table("consumption_buckets") as batch:
        batch.drop_column("estimated_s")
        batch.drop_column("covered_s")
