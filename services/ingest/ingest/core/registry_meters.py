"""Decisions on meters: register, update, remove, replace."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from amiflow_schemas.events.registry import (
    DiByteOrder,
    MaintenanceState,
    MeterDefined,
    MeterStatus,
    RegistryChange,
)
from amiflow_schemas.primitives import check_unit

from ingest.core.registry import (
    Meter,
    MeterDetails,
    RegistryConflict,
    RegistryRefused,
    RegistryUpdate,
    Removal,
    Topology,
)
from ingest.core.registry_events import meter_defined, meter_replaced


@dataclass(frozen=True)
class MeterSwap:
    """A field crew's meter exchange: both readings and times, and what differs on the new meter."""

    new_meter_id: str
    new_bus_address: str
    removed_at: datetime
    removal_reading: Decimal
    installed_at: datetime
    installation_reading: Decimal
    # None keeps the old meter's value: a like-for-like swap only changes id and address.
    profile: str | None = None
    multiplier: Decimal | None = None
    dial_count: int | None = None
    di_order: DiByteOrder | None = None


def register_meter(tenant_id: str, meter_id: str, details: MeterDetails, existing: Meter | None,
                   topology: Topology) -> RegistryUpdate:
    """A new meter, active at revision 1."""
    if existing is not None:
        raise RegistryConflict(f"meter {meter_id} is already registered")
    meter = Meter(tenant_id, meter_id, details)
    return RegistryUpdate(meters=(meter,), events=(_defined(meter, RegistryChange.REGISTERED, topology),))


def update_meter(current: Meter, details: MeterDetails, topology: Topology) -> RegistryUpdate:
    """New details for a meter; the same details again change nothing and announce nothing."""
    if details == current.details:
        return RegistryUpdate()
    _check_active(current)
    if details.utility is not current.details.utility:
        raise RegistryRefused(f"utility: meter {current.meter_id} measures {current.details.utility.value}; "
                              "a meter's utility cannot change, register a new meter instead")
    meter = replace(current, details=details, revision=current.revision + 1)
    return RegistryUpdate(meters=(meter,), events=(_defined(meter, RegistryChange.UPDATED, topology),))


def remove_meter(current: Meter, removed_at: datetime, removal_reading: Decimal | None) -> RegistryUpdate:
    """Take a meter off the network; its record and history stay."""
    _check_active(current)
    _check_after_installation(current, removed_at)
    if removal_reading is not None and removal_reading < 0:
        raise RegistryRefused("removal_reading: a register reading cannot be negative")
    meter = replace(current, status=MeterStatus.REMOVED, revision=current.revision + 1,
                    removal=Removal(removed_at, removal_reading))
    return RegistryUpdate(meters=(meter,), events=(meter_defined(meter, RegistryChange.REMOVED),))


def replace_meter(current: Meter, swap: MeterSwap, existing_new: Meter | None,
                  topology: Topology) -> RegistryUpdate:
    """Swap a meter: the old one is removed with its last reading, the new one starts from its first.

    Two events: MeterReplaced on the old meter's key (with its final state, since it may be the
    last record compaction keeps for it) and MeterDefined for the new meter, which names the meter
    it replaces. VEE carries consumption across the swap from the two readings (vee.md §4).
    """
    _check_active(current)
    if existing_new is not None or swap.new_meter_id == current.meter_id:
        raise RegistryConflict(f"meter {swap.new_meter_id} is already registered; a replacement needs a new id")
    if swap.installed_at < swap.removed_at:
        raise RegistryRefused("installed_at: the new meter cannot be installed before the old one was removed")
    _check_after_installation(current, swap.removed_at)
    old = replace(current, status=MeterStatus.REMOVED, revision=current.revision + 1,
                  removal=Removal(swap.removed_at, swap.removal_reading, swap.new_meter_id))
    new = Meter(current.tenant_id, swap.new_meter_id, _successor_details(current.details, swap),
                installed_at=swap.installed_at, replaces_meter_id=current.meter_id)
    registered = _defined(new, RegistryChange.REGISTERED, topology, freed=current.meter_id)
    return RegistryUpdate(meters=(old, new), events=(meter_replaced(old, new), registered))


def _successor_details(old: MeterDetails, swap: MeterSwap) -> MeterDetails:
    return replace(
        old, bus_address=swap.new_bus_address, installation_date=swap.installed_at.date(),
        installation_reading=swap.installation_reading,
        profile=swap.profile if swap.profile is not None else old.profile,
        multiplier=swap.multiplier if swap.multiplier is not None else old.multiplier,
        dial_count=swap.dial_count if swap.dial_count is not None else old.dial_count,
        di_order=swap.di_order if swap.di_order is not None else old.di_order,
    )


def _check_active(meter: Meter) -> None:
    if meter.removal is not None:
        raise RegistryConflict(f"meter {meter.meter_id} was removed at {meter.removal.removed_at.isoformat()}; "
                               "a removed meter's record is kept as it was")


def _check_after_installation(meter: Meter, removed_at: datetime) -> None:
    if meter.installed_at is not None and removed_at < meter.installed_at:
        raise RegistryRefused(f"removed_at: meter {meter.meter_id} was installed at "
                              f"{meter.installed_at.isoformat()}, after {removed_at.isoformat()}")


def _defined(meter: Meter, change: RegistryChange, topology: Topology, freed: str | None = None) -> MeterDefined:
    """The meter's event, once every problem with it is known: bad fields and a bad placement."""
    conflicts, problems = _placement_problems(meter, topology, freed)
    try:  # the state's own check of the unit runs only once every field is well formed
        check_unit(meter.details.utility, meter.details.unit)
    except ValueError as exc:
        problems.append(str(exc))  # worded as the state check words it, so the two merge
    try:
        event = meter_defined(meter, change)
    except RegistryRefused as exc:
        problems.extend(exc.reasons)
    if problems:
        raise RegistryRefused(*conflicts, *problems)
    if conflicts:
        raise RegistryConflict(*conflicts)
    return event


def _placement_problems(meter: Meter, topology: Topology, freed: str | None) -> tuple[list[str], list[str]]:
    """(conflicts, problems): the gateway exists and serves; no other active meter behind its root has the address."""
    gateway_id, address = meter.details.gateway_id, meter.details.bus_address
    if gateway_id is None:
        return [], []
    gateway = topology.gateways.get(gateway_id)
    if gateway is None:
        return [], [f"gateway_id: gateway {gateway_id} is not registered"]
    if gateway.details.maintenance is MaintenanceState.RETIRED:
        return [], [f"gateway_id: gateway {gateway_id} is retired"]
    holder = topology.meter_at(gateway_id, address)
    if holder is not None and holder not in (meter.meter_id, freed):
        return [f"bus_address: {address} is already used by meter {holder} behind gateway "
                f"{topology.root_of(gateway_id)}"], []
    return [], []
