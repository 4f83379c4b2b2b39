"""What VEE keeps of the device registry: each meter's latest state, materialised from
amiflow.registry.devices (never read from ingest's tables)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from amiflow_runtime.db import UtcDateTime, one_of
from amiflow_schemas.events.registry import MeterState
from sqlalchemy import Column, Integer, String, Table, Text, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters.db import metadata

meter_registry = Table(
    "meter_registry", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("state", Text, nullable=False),  # MeterState as JSON, exactly as the registry sent it
    Column("updated_at", UtcDateTime(), nullable=False),
    # Copied out of the state so fleet-wide queries can filter and label by them in SQL.
    Column("utility", String(16), nullable=True),
    Column("unit", String(8), nullable=True),
)


async def remember(session: AsyncSession, tenant_id: str, revision: int, state: MeterState, at: datetime) -> bool:
    """Keep `state` unless a newer revision is already known (registry events may arrive late)."""
    key = and_(meter_registry.c.tenant_id == tenant_id, meter_registry.c.meter_id == state.meter_id)
    known = (await session.execute(select(meter_registry.c.revision).where(key))).scalar()
    values = {"revision": revision, "state": state.model_dump_json(), "updated_at": at,
              "utility": state.utility.value, "unit": state.unit.value}
    if known is None:
        await session.execute(insert(meter_registry).values(tenant_id=tenant_id, meter_id=state.meter_id, **values))
        return True
    if revision <= known:
        return False
    await session.execute(update(meter_registry).where(key).values(**values))
    return True


async def meter_state(session: AsyncSession, tenant_id: str, meter_id: str) -> MeterState | None:
    """The registry's latest state of a meter, as VEE last heard it."""
    row = (await session.execute(select(meter_registry.c.state).where(
        meter_registry.c.tenant_id == tenant_id, meter_registry.c.meter_id == meter_id))).first()
    return None if row is None else MeterState.model_validate_json(row.state)


async def meters_in_group(session: AsyncSession, tenant_id: str, kind: str, group_id: str) -> list[MeterState]:
    """The tenant's meters whose registry groups put them in `group_id` (building, customer type or DMA)."""
    rows = await session.execute(select(meter_registry.c.state).where(meter_registry.c.tenant_id == tenant_id))
    meters = [MeterState.model_validate_json(r.state) for r in rows]
    return [m for m in meters if getattr(m.groups, kind) == group_id]


MAX_SWAPS = 50  # a chain of meter replacements, never a cycle


async def meter_states(session: AsyncSession, tenant_id: str, meter_ids: Iterable[str]) -> dict[str, MeterState]:
    """The registry's latest states of the named meters (the unknown ones are absent), in one query."""
    wanted = sorted(set(meter_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(meter_registry.c.state).where(
        meter_registry.c.tenant_id == tenant_id, one_of(session, meter_registry.c.meter_id, wanted)))
    states = (MeterState.model_validate_json(r.state) for r in rows)
    return {state.meter_id: state for state in states}


async def swap_neighbourhood(session: AsyncSession, tenant_id: str, meter_ids: Iterable[str]) -> dict[str, MeterState]:
    """The known meters among `meter_ids` and every meter their replacement chains name, both ways: what
    `newest_in` and `chain_in` need, read a generation of swaps per query (one or two for most meters)."""
    known: dict[str, MeterState] = {}
    asked: set[str] = set()
    wanted = set(meter_ids)
    for _ in range(MAX_SWAPS):
        wanted -= asked
        if not wanted:
            break
        asked |= wanted
        found = await meter_states(session, tenant_id, wanted)
        known.update(found)
        wanted = {m for state in found.values() for m in (
            state.replaces_meter_id, state.removal.replaced_by_meter_id if state.removal else None) if m}
    return known


def chain_in(known: Mapping[str, MeterState], meter_id: str) -> list[MeterState]:
    """The meter and the meters it replaced, oldest first (empty when the meter is unknown)."""
    chain: list[MeterState] = []
    current: str | None = meter_id
    while current is not None and len(chain) < MAX_SWAPS:
        state = known.get(current)
        if state is None:
            break
        chain.insert(0, state)
        current = state.replaces_meter_id
    return chain


def newest_in(known: Mapping[str, MeterState], meter_id: str) -> str:
    """The meter now in place at a meter's metering point: its successors followed while the registry knows them.

    A removed meter's late reading belongs to the same series as its successor's, and must be validated
    with the whole chain: the successor's first interval spans the swap.
    """
    current = meter_id
    for _ in range(MAX_SWAPS):
        state = known.get(current)
        successor = state.removal.replaced_by_meter_id if state is not None and state.removal else None
        if successor is None:
            break
        following = known.get(successor)
        if following is None or following.replaces_meter_id != current:
            break  # the successor is not known yet (or names another predecessor)
        current = successor
    return current


def series_in(known: Mapping[str, MeterState], meter_id: str) -> str:
    """The metering point a meter reads into: the first meter of its replacement chain."""
    chain = chain_in(known, meter_id)
    return chain[0].meter_id if chain else meter_id


async def replacement_chain(session: AsyncSession, tenant_id: str, meter_id: str) -> list[MeterState]:
    """The meter and the meters it replaced, oldest first (empty when the meter is unknown)."""
    return chain_in(await swap_neighbourhood(session, tenant_id, [meter_id]), meter_id)


async def newest_of(session: AsyncSession, tenant_id: str, meter_id: str) -> str:
    """The meter now in place at a meter's metering point (see `newest_in`)."""
    return newest_in(await swap_neighbourhood(session, tenant_id, [meter_id]), meter_id)


async def series_of(session: AsyncSession, tenant_id: str, meter_id: str) -> str:
    """The metering point a meter reads into: the first meter of its replacement chain."""
    return series_in(await swap_neighbourhood(session, tenant_id, [meter_id]), meter_id)
