"""Device states as the registry's events carry them; building them is also the format check.

The event payloads (amiflow_schemas.events.registry) hold the one definition of what a valid
address, profile name or ICCID is, so the core builds them first and turns any violation into a
RegistryRefused with one reason per field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from amiflow_schemas.events import registry as ev
from amiflow_schemas.events.registry import DeviceKind, RegistryChange, SimCardAspect
from pydantic import ValidationError

from ingest.core.registry import (
    Gateway,
    Meter,
    ReadSchedule,
    RegistryRefused,
    SimCard,
    device_key,
)

P = TypeVar("P")

# What the registry's patterns (amiflow_schemas.events.registry) mean, for people fixing a row.
_PATTERN_MEANS = {
    "meter_id": "1-64 letters, digits, '.', '_', ':' or '-'",
    "gateway_id": "1-64 letters, digits, '.', '_', ':' or '-'",
    "parent_gateway_id": "1-64 letters, digits, '.', '_', ':' or '-'",
    "replaces_meter_id": "1-64 letters, digits, '.', '_', ':' or '-'",
    "profile": "a profile name such as cjt188-water-2004 (letters, digits, '.', '_', '-')",
    "bus_address": "the address printed on the nameplate: 1-32 hex digits",
    "channel": "a port name such as 1 or RS485-2 (letters, digits, '.', '_', ':', '-')",
    "iccid": "the 18-22 characters printed on the card, starting 89",
    "imsi": "6-15 digits",
    "msisdn": "3-20 digits, optionally after a +",
    "registration_id": "1-128 characters without spaces",
}


def reasons_of(exc: ValidationError) -> list[str]:
    """A pydantic error as one line per problem, ``field: reason``."""
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"] if isinstance(part, str))
        field_name = location.rsplit(".", 1)[-1]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] in ("string_pattern_mismatch", "string_too_long") and field_name in _PATTERN_MEANS:
            message = f"{error['input']!r} is not {_PATTERN_MEANS[field_name]}"
        lines.append(f"{location}: {message}" if location else message)
    return lines


def checked(build: Callable[[], P]) -> P:
    """``build()``, with a pydantic ValidationError turned into a RegistryRefused."""
    try:
        return build()
    except ValidationError as exc:
        raise RegistryRefused(*reasons_of(exc)) from None


def schedule_part(schedule: ReadSchedule | None) -> ev.ReadSchedule | None:
    if schedule is None:
        return None
    at = schedule.at.strftime("%H:%M") if schedule.at is not None else None
    return ev.ReadSchedule(kind=schedule.kind, at_local=at, jitter_s=schedule.jitter_s)


def meter_state(meter: Meter) -> ev.MeterState:
    """The meter as events and the API show it; ValidationError when a field is malformed."""
    d, removal = meter.details, meter.removal
    return ev.MeterState(
        meter_id=meter.meter_id, utility=d.utility, profile=d.profile, bus_address=d.bus_address,
        multiplier=d.multiplier, dial_count=d.dial_count, unit=d.unit, installation_date=d.installation_date,
        installation_reading=d.installation_reading, installed_at=meter.installed_at, premise=d.premise,
        room=d.room,
        location=None if d.location is None else ev.GeoLocation(latitude=d.location.latitude,
                                                                 longitude=d.location.longitude),
        groups=ev.MeterGroups(building=d.groups.building, customer_type=d.groups.customer_type,
                              district_metered_area=d.groups.district_metered_area),
        di_order=d.di_order, schedule=schedule_part(d.schedule), gateway_id=d.gateway_id, channel=d.channel,
        status=meter.status, replaces_meter_id=meter.replaces_meter_id,
        removal=None if removal is None else ev.MeterRemoval(
            removed_at=removal.removed_at, removal_reading=removal.reading,
            replaced_by_meter_id=removal.replaced_by),
    )


def gateway_state(gateway: Gateway) -> ev.GatewayState:
    d = gateway.details
    return ev.GatewayState(gateway_id=gateway.gateway_id, kind=d.kind, registration_id=d.registration_id,
                           model=d.model, firmware=d.firmware, parent_gateway_id=d.parent_gateway_id,
                           channel=d.channel, maintenance=d.maintenance)


def sim_card_state(card: SimCard) -> ev.SimCardState:
    d = card.details
    return ev.SimCardState(iccid=card.iccid, imsi=d.imsi, msisdn=d.msisdn, carrier=d.carrier,
                           data_plan=d.data_plan, quota_bytes=d.quota_bytes, used_bytes=d.used_bytes,
                           expires_on=d.expires_on, gateway_id=d.gateway_id)


def meter_defined(meter: Meter, change: RegistryChange) -> ev.MeterDefined:
    key = device_key(meter.tenant_id, DeviceKind.METER, meter.meter_id)
    state = checked(lambda: meter_state(meter))
    return ev.MeterDefined(device_key=key, revision=meter.revision, change=change, meter=state)


def meter_replaced(old: Meter, new: Meter) -> ev.MeterReplaced:
    """The swap as a fact on the old meter's key, carrying its final state (compaction may keep only this)."""
    removal = old.removal
    assert removal is not None and removal.reading is not None and new.installed_at is not None
    assert new.details.installation_reading is not None
    key = device_key(old.tenant_id, DeviceKind.METER, old.meter_id)
    state = checked(lambda: meter_state(old))
    return checked(lambda: ev.MeterReplaced(
        device_key=key, revision=old.revision, meter=state,
        replacement=ev.MeterReplacement(new_meter_id=new.meter_id, removed_at=removal.removed_at,
                                        removal_reading=removal.reading, installed_at=new.installed_at,
                                        installation_reading=new.details.installation_reading)))


def gateway_defined(gateway: Gateway, change: RegistryChange) -> ev.GatewayDefined:
    key = device_key(gateway.tenant_id, DeviceKind.GATEWAY, gateway.gateway_id)
    state = checked(lambda: gateway_state(gateway))
    return ev.GatewayDefined(device_key=key, revision=gateway.revision, change=change, gateway=state)


def sim_card_defined(card: SimCard, change: RegistryChange,
                     changed: tuple[SimCardAspect, ...]) -> ev.SimCardDefined:
    key = device_key(card.tenant_id, DeviceKind.SIM_CARD, card.iccid)
    state = checked(lambda: sim_card_state(card))
    return ev.SimCardDefined(device_key=key, revision=card.revision, change=change, changed=changed,
                             sim_card=state)
