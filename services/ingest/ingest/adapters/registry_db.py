"""Queries on the device registry: what handlers, the DTU gateway and the read scheduler ask.

Reads that precede a change take row locks (``for_update``) on PostgreSQL, so two operators
changing one device get consecutive revisions; SQLite serialises writers with BEGIN IMMEDIATE.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from amiflow_schemas.events.registry import MeterStatus
from sqlalchemy import ColumnElement, Select, delete, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters.registry_rows import (
    gateway_from_row,
    gateway_row,
    history_from_row,
    history_row,
    meter_from_row,
    meter_row,
    sim_card_from_row,
    sim_card_row,
)
from ingest.adapters.registry_tables import (
    registry_gateways,
    registry_meters,
    registry_sim_card_history,
    registry_sim_cards,
)
from ingest.core.registry import Gateway, Meter, RegistryUpdate, SimCard, SimCardRevision, Topology

CHUNK = 1000  # ids per IN list, well under SQLite's and asyncpg's bound-parameter limits
_M, _G, _S = registry_meters.c, registry_gateways.c, registry_sim_cards.c
_ACTIVE = _M.status == MeterStatus.ACTIVE.value


async def _all(session: AsyncSession, query: Select[Any], for_update: bool = False) -> list[Any]:
    return list((await session.execute(query.with_for_update() if for_update else query)).all())


async def _in_chunks(session: AsyncSession, query: Select[Any], column: Any, ids: Iterable[str],
                     for_update: bool = False) -> list[Any]:
    wanted, rows = sorted(set(ids)), []
    for start in range(0, len(wanted), CHUNK):
        rows += await _all(session, query.where(column.in_(wanted[start:start + CHUNK])), for_update)
    return rows


# --- meters -------------------------------------------------------------------------------------

async def meter(session: AsyncSession, tenant_id: str, meter_id: str, for_update: bool = False) -> Meter | None:
    """One meter of the tenant, active or removed."""
    rows = await _all(session, select(registry_meters).where(_M.tenant_id == tenant_id, _M.meter_id == meter_id),
                      for_update)
    return meter_from_row(rows[0]) if rows else None


async def meters_by_id(session: AsyncSession, tenant_id: str, meter_ids: Iterable[str],
                       for_update: bool = False) -> dict[str, Meter]:
    rows = await _in_chunks(session, select(registry_meters).where(_M.tenant_id == tenant_id), _M.meter_id,
                            meter_ids, for_update)
    return {row.meter_id: meter_from_row(row) for row in rows}


async def list_meters(session: AsyncSession, tenant_id: str, *, after: str | None = None, limit: int = 100,
                      status: MeterStatus | None = None, gateway_id: str | None = None) -> list[Meter]:
    """A page of the tenant's meters in id order, after the id ``after``."""
    query = select(registry_meters).where(_M.tenant_id == tenant_id).order_by(_M.meter_id).limit(limit)
    if after is not None:
        query = query.where(_M.meter_id > after)
    if status is not None:
        query = query.where(_M.status == status.value)
    if gateway_id is not None:
        query = query.where(_M.gateway_id == gateway_id)
    return [meter_from_row(row) for row in await _all(session, query)]


def _behind(tenant_id: str, gateway_id: str) -> ColumnElement[bool]:
    children = select(_G.gateway_id).where(_G.tenant_id == tenant_id, _G.parent_gateway_id == gateway_id)
    return or_(_M.gateway_id == gateway_id, _M.gateway_id.in_(children.scalar_subquery()))


async def meters_behind(session: AsyncSession, tenant_id: str, gateway_id: str) -> list[Meter]:
    """Active meters on the gateway and on the collectors hanging on it, by id."""
    query = (select(registry_meters).where(_M.tenant_id == tenant_id, _ACTIVE, _behind(tenant_id, gateway_id))
             .order_by(_M.meter_id))
    return [meter_from_row(row) for row in await _all(session, query)]


async def meter_by_address(session: AsyncSession, tenant_id: str, gateway_id: str,
                           bus_address: str) -> Meter | None:
    """The active meter answering to ``bus_address`` behind the gateway (directly or via a collector)."""
    query = select(registry_meters).where(_M.tenant_id == tenant_id, _ACTIVE, _M.bus_address == bus_address,
                                          _behind(tenant_id, gateway_id)).order_by(_M.meter_id).limit(1)
    rows = await _all(session, query)
    return meter_from_row(rows[0]) if rows else None


async def active_meters(session: AsyncSession) -> list[Meter]:
    """Every tenant's active meters, by tenant and id: what the read scheduler plans from."""
    query = select(registry_meters).where(_ACTIVE).order_by(_M.tenant_id, _M.meter_id)
    return [meter_from_row(row) for row in await _all(session, query)]


# --- gateways -----------------------------------------------------------------------------------

async def gateway(session: AsyncSession, tenant_id: str, gateway_id: str,
                  for_update: bool = False) -> Gateway | None:
    found = await gateways_by_id(session, tenant_id, [gateway_id], for_update)
    return found.get(gateway_id)


async def gateways_by_id(session: AsyncSession, tenant_id: str, gateway_ids: Iterable[str],
                         for_update: bool = False) -> dict[str, Gateway]:
    rows = await _in_chunks(session, select(registry_gateways).where(_G.tenant_id == tenant_id), _G.gateway_id,
                            gateway_ids, for_update)
    return {row.gateway_id: gateway_from_row(row) for row in rows}


async def list_gateways(session: AsyncSession, tenant_id: str, *, after: str | None = None,
                        limit: int = 100, parent_gateway_id: str | None = None) -> list[Gateway]:
    query = select(registry_gateways).where(_G.tenant_id == tenant_id).order_by(_G.gateway_id).limit(limit)
    if after is not None:
        query = query.where(_G.gateway_id > after)
    if parent_gateway_id is not None:
        query = query.where(_G.parent_gateway_id == parent_gateway_id)
    return [gateway_from_row(row) for row in await _all(session, query)]


async def gateway_by_registration_id(session: AsyncSession, registration_id: str) -> Gateway | None:
    """The gateway, of any tenant, whose DTU sends ``registration_id`` when it connects."""
    rows = await _all(session, select(registry_gateways).where(_G.registration_id == registration_id))
    return gateway_from_row(rows[0]) if rows else None


async def registration_holders(session: AsyncSession, registration_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """registration id -> (tenant, gateway id) of the gateways, of any tenant, that hold those ids."""
    rows = await _in_chunks(session, select(_G.registration_id, _G.tenant_id, _G.gateway_id), _G.registration_id,
                            registration_ids)
    return {row.registration_id: (row.tenant_id, row.gateway_id) for row in rows}


# --- SIM cards ----------------------------------------------------------------------------------

async def sim_cards_by_id(session: AsyncSession, tenant_id: str, iccids: Iterable[str],
                          for_update: bool = False) -> dict[str, SimCard]:
    rows = await _in_chunks(session, select(registry_sim_cards).where(_S.tenant_id == tenant_id), _S.iccid,
                            iccids, for_update)
    return {row.iccid: sim_card_from_row(row) for row in rows}


async def sim_card(session: AsyncSession, tenant_id: str, iccid: str, for_update: bool = False) -> SimCard | None:
    return (await sim_cards_by_id(session, tenant_id, [iccid], for_update)).get(iccid)


async def list_sim_cards(session: AsyncSession, tenant_id: str, *, after: str | None = None, limit: int = 100,
                         gateway_id: str | None = None) -> list[SimCard]:
    query = select(registry_sim_cards).where(_S.tenant_id == tenant_id).order_by(_S.iccid).limit(limit)
    if after is not None:
        query = query.where(_S.iccid > after)
    if gateway_id is not None:
        query = query.where(_S.gateway_id == gateway_id)
    return [sim_card_from_row(row) for row in await _all(session, query)]


async def sim_card_history(session: AsyncSession, tenant_id: str, iccid: str) -> list[SimCardRevision]:
    """A card's history rows, oldest first."""
    h = registry_sim_card_history.c
    query = select(registry_sim_card_history).where(h.tenant_id == tenant_id, h.iccid == iccid).order_by(h.revision)
    return [history_from_row(row) for row in await _all(session, query)]


# --- what a change is checked against, and writing it -------------------------------------------

async def topology_around(session: AsyncSession, tenant_id: str, gateway_ids: Collection[str | None], *,
                          registration_ids: Iterable[str] = ()) -> Topology:
    """The gateways named, their parents and collectors, the active meters and cards on all of them."""
    named = {g for g in gateway_ids if g is not None}
    children = await _in_chunks(session, select(_G.gateway_id).where(_G.tenant_id == tenant_id),
                                _G.parent_gateway_id, named)
    first = await gateways_by_id(session, tenant_id, named | {row.gateway_id for row in children})
    parents = {g.details.parent_gateway_id for g in first.values()} - set(first) - {None}
    known = first | await gateways_by_id(session, tenant_id, (p for p in parents if p is not None))
    roots = {g.details.parent_gateway_id or g.gateway_id for g in known.values()}
    siblings = await _in_chunks(session, select(registry_gateways).where(_G.tenant_id == tenant_id),
                                _G.parent_gateway_id, roots)
    topology = Topology()
    for found in [*known.values(), *(gateway_from_row(row) for row in siblings)]:
        topology.add_gateway(found)
    placed = await _in_chunks(session, select(registry_meters).where(_M.tenant_id == tenant_id, _ACTIVE),
                              _M.gateway_id, topology.gateways)
    for row in placed:
        topology.place(meter_from_row(row))
    for card in await _in_chunks(session, select(registry_sim_cards).where(_S.tenant_id == tenant_id),
                                 _S.gateway_id, named, for_update=True):  # a card swap rewrites the old card
        topology.bind(sim_card_from_row(card))
    topology.registrations.update(await registration_holders(session, registration_ids))
    return topology


async def save(session: AsyncSession, update: RegistryUpdate, now: datetime) -> None:
    """Write an update's device states and history rows inside the caller's transaction.

    A device at revision 1 is new and only inserted, so a concurrent registration of the same id
    fails on the primary key. A changed device's row is deleted and inserted again, all deletes
    first, so states that swap an address or a SIM card between two devices never meet a unique
    index half-way; its row was locked when it was read.
    """
    for table, keys, rows in (
        (registry_meters, (_M.tenant_id, _M.meter_id), [meter_row(m, now) for m in update.meters]),
        (registry_gateways, (_G.tenant_id, _G.gateway_id), [gateway_row(g, now) for g in update.gateways]),
        (registry_sim_cards, (_S.tenant_id, _S.iccid), [sim_card_row(c, now) for c in update.sim_cards]),
    ):
        changed = [tuple(row[column.name] for column in keys) for row in rows if row["revision"] > 1]
        for start in range(0, len(changed), CHUNK):
            await session.execute(delete(table).where(tuple_(*keys).in_(changed[start:start + CHUNK])))
        if rows:
            await session.execute(insert(table), rows)
    if update.sim_history:
        await session.execute(insert(registry_sim_card_history), [history_row(h) for h in update.sim_history])
