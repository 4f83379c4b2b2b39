"""Set-based queries on gateways and SIM cards for the console: their counts, link states and the topology.

The link rule is fleet_db's ``link_state``, the one the meters' connection is built on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from amiflow_schemas.events.registry import GatewayKind, MaintenanceState
from sqlalchemy import and_, case, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ingest.adapters.fleet_db import link_state
from ingest.adapters.gateway_db import gateway_connections
from ingest.adapters.registry_db import CHUNK
from ingest.adapters.registry_rows import gateway_from_row, sim_card_from_row
from ingest.adapters.registry_tables import registry_gateways, registry_sim_cards
from ingest.core.fleet_state import GatewayGroup, Horizons, LinkState, SimCardGroup, SimExpiry
from ingest.core.registry import Gateway, SimCard

_G, _C, _S = registry_gateways.c, gateway_connections.c, registry_sim_cards.c


def _gateway_link(h: Horizons) -> ColumnElement[Any]:
    return case((_G.kind == GatewayKind.COLLECTOR.value, null()), else_=link_state(h))


def _with_link() -> Any:
    return registry_gateways.outerjoin(gateway_connections, and_(_C.tenant_id == _G.tenant_id,
                                                                 _C.gateway_id == _G.gateway_id))


async def gateway_groups(session: AsyncSession, tenant_id: str, h: Horizons) -> list[GatewayGroup]:
    """The tenant's gateways counted by kind, maintenance state and link."""
    each = (select(_G.kind, _G.maintenance, _gateway_link(h).label("link")).select_from(_with_link())
            .where(_G.tenant_id == tenant_id).subquery())
    keys = (each.c.kind, each.c.maintenance, each.c.link)
    rows = await session.execute(select(*keys, func.count()).group_by(*keys))
    return [GatewayGroup(GatewayKind(row[0]), MaintenanceState(row[1]), LinkState(row[2]) if row[2] else None,
                         int(row[3])) for row in rows]


async def sim_card_groups(session: AsyncSession, tenant_id: str, h: Horizons) -> list[SimCardGroup]:
    """The tenant's SIM cards counted by binding, expiry and quota."""
    expiry = case((_S.expires_on.is_(None), SimExpiry.UNKNOWN.value),
                  (_S.expires_on < h.today, SimExpiry.EXPIRED.value),
                  (_S.expires_on <= h.sim_warning_until, SimExpiry.EXPIRING_SOON.value), else_=SimExpiry.VALID.value)
    over_quota = case((and_(_S.quota_bytes.is_not(None), _S.used_bytes >= _S.quota_bytes), 1), else_=0)
    in_gateway = case((_S.gateway_id.is_not(None), 1), else_=0)
    each = (select(in_gateway.label("in_gateway"), expiry.label("expiry"), over_quota.label("over_quota"))
            .where(_S.tenant_id == tenant_id).subquery())
    keys = (each.c.in_gateway, each.c.expiry, each.c.over_quota)
    rows = await session.execute(select(*keys, func.count()).group_by(*keys))
    return [SimCardGroup(bool(row[0]), SimExpiry(row[1]), bool(row[2]), int(row[3])) for row in rows]


async def link_states(session: AsyncSession, tenant_id: str, gateway_ids: Iterable[str],
                      h: Horizons) -> dict[str, LinkState]:
    """The link state of each named DTU or concentrator; one that never connected has no row and is absent."""
    wanted, states = sorted(set(gateway_ids)), dict[str, LinkState]()
    for start in range(0, len(wanted), CHUNK):
        query = select(_C.gateway_id, link_state(h)).where(_C.tenant_id == tenant_id,
                                                           _C.gateway_id.in_(wanted[start:start + CHUNK]))
        states.update((row[0], LinkState(row[1])) for row in await session.execute(query))
    return states


async def topology_roots(session: AsyncSession, tenant_id: str, *, after: str | None, limit: int) -> list[Gateway]:
    """A page of the gateways that hang on nothing (DTUs, concentrators), retired ones left out."""
    query = (select(registry_gateways).where(_G.tenant_id == tenant_id, _G.parent_gateway_id.is_(None),
                                             _G.maintenance != MaintenanceState.RETIRED.value)
             .order_by(_G.gateway_id).limit(limit))
    if after is not None:
        query = query.where(_G.gateway_id > after)
    return [gateway_from_row(row) for row in await session.execute(query)]


async def collectors_of(session: AsyncSession, tenant_id: str, parent_ids: Iterable[str]) -> list[Gateway]:
    """The collectors, not retired, hanging on any of these gateways, by id."""
    wanted, found = sorted(set(parent_ids)), []
    for start in range(0, len(wanted), CHUNK):
        query = select(registry_gateways).where(_G.tenant_id == tenant_id,
                                                _G.parent_gateway_id.in_(wanted[start:start + CHUNK]),
                                                _G.maintenance != MaintenanceState.RETIRED.value)
        found += [gateway_from_row(row) for row in await session.execute(query)]
    return sorted(found, key=lambda g: g.gateway_id)


async def cards_in(session: AsyncSession, tenant_id: str, gateway_ids: Iterable[str]) -> dict[str, SimCard]:
    """The SIM card in each of these gateways, by gateway id (a gateway holds one card at most)."""
    wanted, cards = sorted(set(gateway_ids)), dict[str, SimCard]()
    for start in range(0, len(wanted), CHUNK):
        query = select(registry_sim_cards).where(_S.tenant_id == tenant_id,
                                                 _S.gateway_id.in_(wanted[start:start + CHUNK]))
        cards.update((row.gateway_id, sim_card_from_row(row)) for row in await session.execute(query))
    return cards
