"""Registry handlers: load what a change is checked against, ask the core, then save the new states and
stage their events in one transaction, so the registry topic never misses or invents a change."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from amiflow_runtime import outbox
from amiflow_runtime.service import ServiceRuntime
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters import db
from ingest.adapters import registry_db as rdb
from ingest.adapters.registry_csv import (
    GATEWAYS,
    METERS,
    SIM_CARDS,
    DeviceSheet,
    SheetRows,
    gateway_cells,
    meter_cells,
    sim_card_cells,
)
from ingest.core import registry_meters as meters
from ingest.core import registry_network as network
from ingest.core.registry import (
    DeviceNotFound,
    Gateway,
    GatewayDetails,
    Meter,
    MeterDetails,
    RegistryConflict,
    RegistryUpdate,
    SimCard,
    SimCardDetails,
    Topology,
    registry_envelopes,
)
from ingest.core.registry_import import (
    ImportPlan,
    ImportRow,
    plan_gateway_import,
    plan_meter_import,
    plan_sim_card_import,
)

T = TypeVar("T")


def _event_ids() -> Iterator[uuid.UUID]:
    while True:
        yield uuid.uuid4()


@dataclass
class _Change:
    session: AsyncSession
    now: datetime
    update: RegistryUpdate = field(default_factory=RegistryUpdate)
    apply: bool = True


@asynccontextmanager
async def _changing(runtime: ServiceRuntime, tenant_id: str) -> AsyncIterator[_Change]:
    """A transaction whose ``change.update`` is saved and staged at the end, unless it changes nothing."""
    try:
        async with runtime.sessions() as session, session.begin():
            change = _Change(session, runtime.clock.now())
            yield change
            if change.apply and change.update.events:
                await rdb.save(session, change.update, change.now)
                envelopes = registry_envelopes(tenant_id, change.update, _event_ids(), change.now)
                await outbox.stage(session, db.outbox, envelopes, change.now)
    except IntegrityError as exc:  # a unique index caught what a concurrent transaction slipped in
        raise RegistryConflict("another change to the same device, bus address, registration id or SIM binding "
                               "was saved at the same moment; try again") from exc
    if change.apply and change.update.events:
        runtime.wake_relay()


def _found(device: T | None, what: str) -> T:
    if device is None:
        raise DeviceNotFound(f"{what} is not registered")
    return device


def _latest(states: Iterable[T], device_id: str, id_of: Callable[[T], str], unchanged: T) -> T:
    return next((state for state in states if id_of(state) == device_id), unchanged)


async def register_meter(runtime: ServiceRuntime, tenant_id: str, meter_id: str, details: MeterDetails) -> Meter:
    async with _changing(runtime, tenant_id) as change:
        existing = await rdb.meter(change.session, tenant_id, meter_id, for_update=True)
        topology = await rdb.topology_around(change.session, tenant_id, [details.gateway_id])
        change.update = meters.register_meter(tenant_id, meter_id, details, existing, topology)
    return change.update.meters[0]


async def update_meter(runtime: ServiceRuntime, tenant_id: str, meter_id: str, details: MeterDetails) -> Meter:
    async with _changing(runtime, tenant_id) as change:
        current = _found(await rdb.meter(change.session, tenant_id, meter_id, for_update=True), f"meter {meter_id}")
        topology = await rdb.topology_around(change.session, tenant_id, [details.gateway_id])
        change.update = meters.update_meter(current, details, topology)
    return _latest(change.update.meters, meter_id, lambda m: m.meter_id, current)


async def remove_meter(runtime: ServiceRuntime, tenant_id: str, meter_id: str, removed_at: datetime | None,
                       removal_reading: Decimal | None) -> Meter:
    async with _changing(runtime, tenant_id) as change:
        current = _found(await rdb.meter(change.session, tenant_id, meter_id, for_update=True), f"meter {meter_id}")
        change.update = meters.remove_meter(current, removed_at or change.now, removal_reading)
    return change.update.meters[0]


async def replace_meter(runtime: ServiceRuntime, tenant_id: str, meter_id: str,
                        swap: meters.MeterSwap) -> tuple[Meter, Meter]:
    """Swap a meter for a new one; returns the old meter (removed) and the new one."""
    async with _changing(runtime, tenant_id) as change:
        found = await rdb.meters_by_id(change.session, tenant_id, [meter_id, swap.new_meter_id], for_update=True)
        current = _found(found.get(meter_id), f"meter {meter_id}")
        topology = await rdb.topology_around(change.session, tenant_id, [current.details.gateway_id])
        change.update = meters.replace_meter(current, swap, found.get(swap.new_meter_id), topology)
    old, new = change.update.meters
    return old, new


async def register_gateway(runtime: ServiceRuntime, tenant_id: str, gateway_id: str,
                           details: GatewayDetails) -> Gateway:
    async with _changing(runtime, tenant_id) as change:
        existing = await rdb.gateway(change.session, tenant_id, gateway_id, for_update=True)
        topology = await _gateway_topology(change.session, tenant_id, [gateway_id], [details])
        change.update = network.register_gateway(tenant_id, gateway_id, details, existing, topology)
    return change.update.gateways[0]


async def update_gateway(runtime: ServiceRuntime, tenant_id: str, gateway_id: str,
                         details: GatewayDetails) -> Gateway:
    """New details for a gateway; retiring it is setting its maintenance state to retired."""
    async with _changing(runtime, tenant_id) as change:
        current = _found(await rdb.gateway(change.session, tenant_id, gateway_id, for_update=True),
                         f"gateway {gateway_id}")
        topology = await _gateway_topology(change.session, tenant_id, [gateway_id], [details])
        change.update = network.update_gateway(current, details, topology)
    return _latest(change.update.gateways, gateway_id, lambda g: g.gateway_id, current)


async def _gateway_topology(session: AsyncSession, tenant_id: str, gateway_ids: Iterable[str | None],
                            details: Iterable[GatewayDetails]) -> Topology:
    details = list(details)
    registrations = [d.registration_id for d in details if d.registration_id is not None]
    named = [*gateway_ids, *(d.parent_gateway_id for d in details)]
    return await rdb.topology_around(session, tenant_id, named, registration_ids=registrations)


async def register_sim_card(runtime: ServiceRuntime, tenant_id: str, iccid: str, details: SimCardDetails) -> SimCard:
    """A new SIM card; bound to a gateway, it displaces the card that was in it (a card change)."""
    async with _changing(runtime, tenant_id) as change:
        existing = await rdb.sim_card(change.session, tenant_id, iccid, for_update=True)
        topology = await rdb.topology_around(change.session, tenant_id, [details.gateway_id])
        change.update = network.register_sim_card(tenant_id, iccid, details, existing, topology, change.now)
    return next(card for card in change.update.sim_cards if card.iccid == iccid)


async def update_sim_card(runtime: ServiceRuntime, tenant_id: str, iccid: str,
                          details: SimCardDetails | Callable[[SimCardDetails], SimCardDetails]) -> SimCard:
    """New details for a card, given whole or as a change of the current ones (a binding)."""
    async with _changing(runtime, tenant_id) as change:
        current = _found(await rdb.sim_card(change.session, tenant_id, iccid, for_update=True), f"SIM card {iccid}")
        wanted = details(current.details) if callable(details) else details
        topology = await rdb.topology_around(change.session, tenant_id, [wanted.gateway_id])
        change.update = network.update_sim_card(current, wanted, topology, change.now)
    return _latest(change.update.sim_cards, iccid, lambda c: c.iccid, current)


async def bind_sim_card(runtime: ServiceRuntime, tenant_id: str, iccid: str, gateway_id: str | None) -> SimCard:
    """Put a card into a gateway, or take it out (None)."""
    return await update_sim_card(runtime, tenant_id, iccid, lambda d: replace(d, gateway_id=gateway_id))


async def import_sheet(runtime: ServiceRuntime, tenant_id: str, sheet: DeviceSheet[Any], rows: SheetRows,
                       dry_run: bool) -> ImportPlan:
    """Check every row; unless ``dry_run``, apply all of them in one transaction when none has a problem."""
    async with _changing(runtime, tenant_id) as change:
        plan = await _plan(change.session, tenant_id, sheet, rows, change.now, lock=not dry_run)
        plan = replace(plan, problems=tuple(sorted((*rows.problems, *plan.problems), key=lambda p: p.line)))
        change.update, change.apply = plan.update, plan.acceptable and not dry_run
    return plan


async def _plan(session: AsyncSession, tenant_id: str, sheet: DeviceSheet[Any], rows: SheetRows, now: datetime,
                lock: bool) -> ImportPlan:
    ids = [sheet.tidy_id(cells.get(sheet.id_column, "")) for _, cells in rows.rows]
    if sheet is METERS:
        known_meters = await rdb.meters_by_id(session, tenant_id, ids, for_update=lock)
        meter_rows = _import_rows(sheet, rows, known_meters, meter_cells)
        gateway_ids = {r.details.gateway_id for r in meter_rows if r.details}
        topology = await rdb.topology_around(session, tenant_id, gateway_ids)
        return plan_meter_import(tenant_id, meter_rows, known_meters, topology)
    if sheet is GATEWAYS:
        known_gateways = await rdb.gateways_by_id(session, tenant_id, ids, for_update=lock)
        gateway_rows = _import_rows(sheet, rows, known_gateways, gateway_cells)
        topology = await _gateway_topology(session, tenant_id, ids, (r.details for r in gateway_rows if r.details))
        return plan_gateway_import(tenant_id, gateway_rows, known_gateways, topology)
    assert sheet is SIM_CARDS
    known_cards = await rdb.sim_cards_by_id(session, tenant_id, ids, for_update=lock)
    card_rows = _import_rows(sheet, rows, known_cards, sim_card_cells)
    topology = await rdb.topology_around(session, tenant_id, {r.details.gateway_id for r in card_rows if r.details})
    return plan_sim_card_import(tenant_id, card_rows, known_cards, topology, now)


def _import_rows(sheet: DeviceSheet[Any], rows: SheetRows, known: dict[str, Any],
                 cells_of: Callable[[Any], dict[str, str]]) -> list[ImportRow[Any]]:
    """Rows as details; columns a file leaves out keep a known device's stored values (registry_csv)."""
    result = []
    for line, cells in rows.rows:
        device = known.get(sheet.tidy_id(cells.get(sheet.id_column, "")))
        result.append(sheet.import_row(line, {**cells_of(device), **cells} if device else cells))
    return result
