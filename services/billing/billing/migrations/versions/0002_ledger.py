"""billing: account and tariff events, meter links, ledger, balances, settlements, payment keys, rating state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from amiflow_runtime.db import ExactDecimal, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TENANT = ("tenant_id", sa.String(64))


def upgrade() -> None:
    op.create_table(
        "account_events",
        sa.Column(*TENANT, primary_key=True), sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False, index=True),
        sa.Column("seq", sa.Integer(), nullable=False), sa.Column("envelope", sa.Text(), nullable=False),
    )
    op.create_table(
        "tariff_events",
        sa.Column(*TENANT, primary_key=True), sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("tariff_id", sa.String(64), nullable=False, index=True),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False), sa.Column("envelope", sa.Text(), nullable=False),
    )
    op.create_table(
        "meter_links",
        sa.Column(*TENANT, primary_key=True), sa.Column("meter_id", sa.String(64), primary_key=True),
        sa.Column("linked_at", UtcDateTime(), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False), sa.Column("unlinked_at", UtcDateTime(), nullable=True),
    )
    op.create_table(
        "ledger_entries",
        sa.Column(*TENANT, primary_key=True), sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False), sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False), sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("effect", ExactDecimal(), nullable=False), sa.Column("envelope", sa.Text(), nullable=False),
    )
    op.create_index("ledger_entries_by_day", "ledger_entries", ["tenant_id", "account_id", "business_day"])
    op.create_table(
        "account_balances",
        sa.Column(*TENANT, primary_key=True), sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("balance", ExactDecimal(), nullable=False), sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False), sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("settled_through", sa.Date(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "daily_settlements",
        sa.Column(*TENANT, primary_key=True), sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("settlement_date", sa.Date(), primary_key=True), sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("closing_balance", ExactDecimal(), nullable=False), sa.Column("envelope", sa.Text(), nullable=False),
    )
    op.create_table(
        "payment_keys",
        sa.Column(*TENANT, primary_key=True), sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False), sa.Column("account_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "tier_periods",
        sa.Column(*TENANT, primary_key=True), sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("tariff_id", sa.String(64), primary_key=True),
        sa.Column("period_start", UtcDateTime(), primary_key=True),
        sa.Column("period_end", UtcDateTime(), nullable=False), sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("exact_cost", ExactDecimal(), nullable=False),
    )
    op.create_table(
        "rated_readings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(*TENANT, nullable=False), sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("tariff_id", sa.String(64), nullable=False),
        sa.Column("reading_event_id", sa.String(36), nullable=False, index=True),
        sa.Column("meter_id", sa.String(64), nullable=False), sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("span_start", UtcDateTime(), nullable=False), sa.Column("span_end", UtcDateTime(), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False), sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("registers", sa.Text(), nullable=False),
    )
    op.create_index("rated_readings_by_tariff", "rated_readings", ["tenant_id", "account_id", "tariff_id"])
    op.create_table(
        "unbilled_readings",
        sa.Column(*TENANT, primary_key=True), sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("meter_id", sa.String(64), nullable=False, index=True),
        sa.Column("measured_at", UtcDateTime(), nullable=False), sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False), sa.Column("held_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("unbilled_readings", "rated_readings", "tier_periods", "payment_keys", "daily_settlements",
                  "account_balances", "ledger_entries", "meter_links", "tariff_events", "account_events"):
        op.drop_table(table)
