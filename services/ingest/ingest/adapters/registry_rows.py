"""Registry devices to table rows and back (the domain classes know nothing of the ORM)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from amiflow_schemas.events.registry import (
    DiByteOrder,
    GatewayKind,
    MaintenanceState,
    MeterStatus,
    RegistryChange,
    ScheduleKind,
    SimCardAspect,
)
from amiflow_schemas.primitives import Unit, Utility

from ingest.core.registry import (
    Gateway,
    GatewayDetails,
    Location,
    Meter,
    MeterDetails,
    MeterGroups,
    ReadSchedule,
    Removal,
    SimCard,
    SimCardDetails,
    SimCardRevision,
)
from ingest.core.registry_text import time_of_day

Row = Any  # a SQLAlchemy Row, read by column name


def _exact(value: Decimal | None) -> Decimal | None:
    # PostgreSQL returns NUMERIC(28, 9) with nine decimals; normalised, both backends give back
    # the same Decimal, so an unchanged import row compares equal to what is stored.
    return None if value is None else value.normalize()


def meter_row(meter: Meter, now: datetime) -> dict[str, Any]:
    d, schedule, removal = meter.details, meter.details.schedule, meter.removal
    return {
        "tenant_id": meter.tenant_id, "meter_id": meter.meter_id, "utility": d.utility.value,
        "profile": d.profile, "bus_address": d.bus_address, "unit": d.unit.value, "multiplier": d.multiplier,
        "dial_count": d.dial_count, "installation_date": d.installation_date,
        "installation_reading": d.installation_reading, "installed_at": meter.installed_at,
        "premise": d.premise, "room": d.room,
        "latitude": d.location.latitude if d.location else None,
        "longitude": d.location.longitude if d.location else None,
        "building": d.groups.building, "customer_type": d.groups.customer_type,
        "district_metered_area": d.groups.district_metered_area,
        "di_order": d.di_order.value if d.di_order else None,
        "schedule_kind": schedule.kind.value if schedule else None,
        "schedule_at": schedule.at.strftime("%H:%M") if schedule and schedule.at else None,
        "schedule_jitter_s": schedule.jitter_s if schedule else None,
        "gateway_id": d.gateway_id, "channel": d.channel, "status": meter.status.value,
        "replaces_meter_id": meter.replaces_meter_id,
        "removed_at": removal.removed_at if removal else None,
        "removal_reading": removal.reading if removal else None,
        "replaced_by_meter_id": removal.replaced_by if removal else None,
        "revision": meter.revision, "updated_at": now,
    }


def meter_from_row(row: Row) -> Meter:
    schedule = None if row.schedule_kind is None else ReadSchedule(
        ScheduleKind(row.schedule_kind), time_of_day(row.schedule_at) if row.schedule_at else None,
        row.schedule_jitter_s or 0)
    location = None if row.latitude is None else Location(row.latitude.normalize(), row.longitude.normalize())
    details = MeterDetails(
        utility=Utility(row.utility), profile=row.profile, bus_address=row.bus_address, unit=Unit(row.unit),
        multiplier=row.multiplier.normalize(), dial_count=row.dial_count, installation_date=row.installation_date,
        installation_reading=_exact(row.installation_reading), premise=row.premise, room=row.room,
        location=location,
        groups=MeterGroups(row.building, row.customer_type, row.district_metered_area),
        di_order=DiByteOrder(row.di_order) if row.di_order else None, schedule=schedule,
        gateway_id=row.gateway_id, channel=row.channel,
    )
    removal = None if row.removed_at is None else Removal(row.removed_at, _exact(row.removal_reading),
                                                          row.replaced_by_meter_id)
    return Meter(row.tenant_id, row.meter_id, details, row.revision, MeterStatus(row.status), row.installed_at,
                 row.replaces_meter_id, removal)


def gateway_row(gateway: Gateway, now: datetime) -> dict[str, Any]:
    d = gateway.details
    return {
        "tenant_id": gateway.tenant_id, "gateway_id": gateway.gateway_id, "kind": d.kind.value,
        "registration_id": d.registration_id, "model": d.model, "firmware": d.firmware,
        "parent_gateway_id": d.parent_gateway_id, "channel": d.channel, "maintenance": d.maintenance.value,
        "revision": gateway.revision, "updated_at": now,
    }


def gateway_from_row(row: Row) -> Gateway:
    details = GatewayDetails(GatewayKind(row.kind), row.registration_id, row.model, row.firmware,
                             row.parent_gateway_id, row.channel, MaintenanceState(row.maintenance))
    return Gateway(row.tenant_id, row.gateway_id, details, row.revision)


def _sim_card_columns(d: SimCardDetails) -> dict[str, Any]:
    return {"imsi": d.imsi, "msisdn": d.msisdn, "carrier": d.carrier, "data_plan": d.data_plan,
            "quota_bytes": d.quota_bytes, "used_bytes": d.used_bytes, "expires_on": d.expires_on,
            "gateway_id": d.gateway_id}


def sim_card_row(card: SimCard, now: datetime) -> dict[str, Any]:
    return {"tenant_id": card.tenant_id, "iccid": card.iccid, **_sim_card_columns(card.details),
            "revision": card.revision, "updated_at": now}


def sim_card_details(row: Row) -> SimCardDetails:
    return SimCardDetails(row.imsi, row.msisdn, row.carrier, row.data_plan, row.quota_bytes, row.used_bytes,
                          row.expires_on, row.gateway_id)


def sim_card_from_row(row: Row) -> SimCard:
    return SimCard(row.tenant_id, row.iccid, sim_card_details(row), row.revision)


def history_row(entry: SimCardRevision) -> dict[str, Any]:
    card = entry.card
    return {"tenant_id": card.tenant_id, "iccid": card.iccid, "revision": card.revision,
            "change": entry.change.value, "changed": ",".join(aspect.value for aspect in entry.changed),
            **_sim_card_columns(card.details), "recorded_at": entry.recorded_at}


def history_from_row(row: Row) -> SimCardRevision:
    card = SimCard(row.tenant_id, row.iccid, sim_card_details(row), row.revision)
    changed = tuple(SimCardAspect(aspect) for aspect in row.changed.split(",") if aspect)
    return SimCardRevision(card, RegistryChange(row.change), changed, row.recorded_at)
