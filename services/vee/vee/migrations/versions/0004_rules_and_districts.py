"""vee: rule versions per tenant, district metered areas and their evaluated days, bucket completeness

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_versions",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(128), primary_key=True),
        sa.Column("effective_from", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("published_by", sa.String(128), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "districts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("district_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("inflow_meter_ids", sa.Text(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "district_days",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("district_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("day_start", UtcDateTime(), nullable=False),
        sa.Column("day_end", UtcDateTime(), nullable=False),
        sa.Column("inflow", ExactDecimal(), nullable=True),
        sa.Column("customer_use", ExactDecimal(), nullable=True),
        sa.Column("non_revenue", ExactDecimal(), nullable=True),
        sa.Column("non_revenue_share", ExactDecimal(), nullable=True),
        sa.Column("actual_coverage", ExactDecimal(), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("customer_meters", sa.Integer(), nullable=False),
        sa.Column("night_hour_start", UtcDateTime(), nullable=True),
        sa.Column("minimum_night_flow", ExactDecimal(), nullable=True),
        sa.Column("legitimate_night_use", ExactDecimal(), nullable=True),
        sa.Column("net_night_flow", ExactDecimal(), nullable=True),
        sa.Column("night_baseline", ExactDecimal(), nullable=True),
        sa.Column("night_alarm", sa.Boolean(), nullable=False),
        sa.Column("alarms_evaluated", sa.Boolean(), nullable=False),
        sa.Column("evaluated_at", UtcDateTime(), nullable=False),
    )
    # Buckets written before this column existed: only the all-actual ones are known to be complete.
    op.add_column("consumption_buckets", sa.Column("complete", sa.Boolean(), nullable=False,
                                                   server_default=sa.false()))
    op.execute("UPDATE consumption_buckets SET complete = all_actual")


def downgrade() -> None:
    with op.batch_alter_table("consumption_buckets") as batch:  # SQLite rebuilds the table
        batch.drop_column("complete")
    op.drop_table("district_days")
    op.drop_table("districts")
    op.drop_table("rule_versions")
