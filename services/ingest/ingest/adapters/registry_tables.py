"""The device registry's tables, on ingest's one metadata (migration 0002 creates them).

Every key starts with the tenant, except the DTU registration id: a connecting DTU names nothing
but that id, so it is unique across tenants.
"""

from __future__ import annotations

from amiflow_runtime.db import ExactDecimal, UtcDateTime
from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table, UniqueConstraint, text

from ingest.adapters.db import metadata

ID = 64
LABEL = 200

registry_meters = Table(
    "registry_meters", metadata,
    Column("tenant_id", String(ID), primary_key=True),
    Column("meter_id", String(ID), primary_key=True),
    Column("utility", String(16), nullable=False),
    Column("profile", String(ID), nullable=False),
    Column("bus_address", String(32), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("multiplier", ExactDecimal(), nullable=False),
    Column("dial_count", Integer),
    Column("installation_date", Date),
    Column("installation_reading", ExactDecimal()),
    Column("installed_at", UtcDateTime()),
    Column("premise", String(LABEL)),
    Column("room", String(LABEL)),
    Column("latitude", ExactDecimal()),
    Column("longitude", ExactDecimal()),
    Column("building", String(LABEL)),
    Column("customer_type", String(LABEL)),
    Column("district_metered_area", String(LABEL)),
    Column("di_order", String(8)),
    Column("schedule_kind", String(8)),
    Column("schedule_at", String(5)),  # HH:MM, the tenant's wall-clock time
    Column("schedule_jitter_s", Integer),
    Column("gateway_id", String(ID)),
    Column("channel", String(32)),
    Column("status", String(8), nullable=False),
    Column("replaces_meter_id", String(ID)),
    Column("removed_at", UtcDateTime()),
    Column("removal_reading", ExactDecimal()),
    Column("replaced_by_meter_id", String(ID)),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The core keeps addresses unique behind a root gateway; the index catches what a race between
    # two transactions on one gateway would let through.
    Index("uq_registry_meters_active_address", "tenant_id", "gateway_id", "bus_address", unique=True,
          sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    Index("ix_registry_meters_status", "status", "tenant_id", "meter_id"),
)

registry_gateways = Table(
    "registry_gateways", metadata,
    Column("tenant_id", String(ID), primary_key=True),
    Column("gateway_id", String(ID), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("registration_id", String(128)),
    Column("model", String(LABEL)),
    Column("firmware", String(LABEL)),
    Column("parent_gateway_id", String(ID)),
    Column("channel", String(32)),
    Column("maintenance", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("uq_registry_gateways_registration_id", "registration_id", unique=True),
    Index("ix_registry_gateways_parent", "tenant_id", "parent_gateway_id"),
)

_SIM_CARD_COLUMNS = (
    ("imsi", String(15)),
    ("msisdn", String(21)),
    ("carrier", String(LABEL)),
    ("data_plan", String(LABEL)),
    ("quota_bytes", BigInteger),
    ("used_bytes", BigInteger),
    ("expires_on", Date),
    ("gateway_id", String(ID)),
)

registry_sim_cards = Table(
    "registry_sim_cards", metadata,
    Column("tenant_id", String(ID), primary_key=True),
    Column("iccid", String(22), primary_key=True),
    *(Column(name, kind) for name, kind in _SIM_CARD_COLUMNS),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "gateway_id", name="uq_registry_sim_cards_gateway"),  # one card per gateway
)

# Append-only: a row per card, number or plan change, holding the card's state after it.
registry_sim_card_history = Table(
    "registry_sim_card_history", metadata,
    Column("tenant_id", String(ID), primary_key=True),
    Column("iccid", String(22), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("change", String(16), nullable=False),
    Column("changed", String(64), nullable=False),  # comma-separated aspects: card,number,plan
    *(Column(name, kind) for name, kind in _SIM_CARD_COLUMNS),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_registry_sim_card_history_gateway", "tenant_id", "gateway_id"),
)
