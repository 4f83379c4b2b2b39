"""ingest: the device registry — meters, gateways, SIM cards and the SIM cards' history

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

ID = 64
LABEL = 200
ACTIVE = sa.text("status = 'active'")


def _sim_card_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("imsi", sa.String(15)),
        sa.Column("msisdn", sa.String(21)),
        sa.Column("carrier", sa.String(LABEL)),
        sa.Column("data_plan", sa.String(LABEL)),
        sa.Column("quota_bytes", sa.BigInteger()),
        sa.Column("used_bytes", sa.BigInteger()),
        sa.Column("expires_on", sa.Date()),
        sa.Column("gateway_id", sa.String(ID)),
    ]


def _meters() -> None:
    op.create_table(
        "registry_meters",
        sa.Column("tenant_id", sa.String(ID), primary_key=True),
        sa.Column("meter_id", sa.String(ID), primary_key=True),
        sa.Column("utility", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(ID), nullable=False),
        sa.Column("bus_address", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("multiplier", ExactDecimal(), nullable=False),
        sa.Column("dial_count", sa.Integer()),
        sa.Column("installation_date", sa.Date()),
        sa.Column("installation_reading", ExactDecimal()),
        sa.Column("installed_at", UtcDateTime()),
        sa.Column("premise", sa.String(LABEL)),
        sa.Column("room", sa.String(LABEL)),
        sa.Column("latitude", ExactDecimal()),
        sa.Column("longitude", ExactDecimal()),
        sa.Column("building", sa.String(LABEL)),
        sa.Column("customer_type", sa.String(LABEL)),
        sa.Column("district_metered_area", sa.String(LABEL)),
        sa.Column("di_order", sa.String(8)),
        sa.Column("schedule_kind", sa.String(8)),
        sa.Column("schedule_at", sa.String(5)),
        sa.Column("schedule_jitter_s", sa.Integer()),
        sa.Column("gateway_id", sa.String(ID)),
        sa.Column("channel", sa.String(32)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("replaces_meter_id", sa.String(ID)),
        sa.Column("removed_at", UtcDateTime()),
        sa.Column("removal_reading", ExactDecimal()),
        sa.Column("replaced_by_meter_id", sa.String(ID)),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("uq_registry_meters_active_address", "registry_meters",
                    ["tenant_id", "gateway_id", "bus_address"], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_index("ix_registry_meters_status", "registry_meters", ["status", "tenant_id", "meter_id"])


def _gateways() -> None:
    op.create_table(
        "registry_gateways",
        sa.Column("tenant_id", sa.String(ID), primary_key=True),
        sa.Column("gateway_id", sa.String(ID), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("registration_id", sa.String(128)),
        sa.Column("model", sa.String(LABEL)),
        sa.Column("firmware", sa.String(LABEL)),
        sa.Column("parent_gateway_id", sa.String(ID)),
        sa.Column("channel", sa.String(32)),
        sa.Column("maintenance", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("uq_registry_gateways_registration_id", "registry_gateways", ["registration_id"], unique=True)
    op.create_index("ix_registry_gateways_parent", "registry_gateways", ["tenant_id", "parent_gateway_id"])


def _sim_cards() -> None:
    op.create_table(
        "registry_sim_cards",
        sa.Column("tenant_id", sa.String(ID), primary_key=True),
        sa.Column("iccid", sa.String(22), primary_key=True),
        *_sim_card_columns(),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "gateway_id", name="uq_registry_sim_cards_gateway"),
    )
    op.create_table(
        "registry_sim_card_history",
        sa.Column("tenant_id", sa.String(ID), primary_key=True),
        sa.Column("iccid", sa.String(22), primary_key=True),
        sa.Column("revision", sa.Integer(), primary_key=True),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("changed", sa.String(64), nullable=False),
        *_sim_card_columns(),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_registry_sim_card_history_gateway", "registry_sim_card_history", ["tenant_id", "gateway_id"])


def upgrade() -> None:
    _meters()
    _gateways()
    _sim_cards()


def downgrade() -> None:
    op.drop_table("registry_sim_card_history")
    op.drop_table("registry_sim_cards")
    op.drop_table("registry_gateways")
    op.drop_index("ix_registry_meters_status", "registry_meters")
    op.drop_index("uq_registry_meters_active_address", "registry_meters")
    op.drop_table("registry_meters")
