"""The whole tenant's collection topology as a tree: DTU or concentrator → collector → meter.

A page of roots is loaded in a fixed number of set-based queries (roots, their collectors, the link
rows, the SIM cards, the meters with their state), however many meters hang on them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from amiflow_schemas.events.registry import MeterStatus
from amiflow_schemas.primitives import Utility
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters import fleet_db, fleet_network_db
from ingest.adapters.fleet_db import MeterRecord, MeterSearch
from ingest.adapters.fleet_views import gateway_links, link_fields
from ingest.adapters.gateway_db import gateway_connections
from ingest.adapters.registry_views import GatewayView, SimCardView, gateway_view, sim_card_view
from ingest.core.fleet_state import Horizons, MeterConnection
from ingest.core.registry import Gateway


class TopologyMeter(BaseModel):
    """A meter as a node of the tree: where it hangs and whether it is reachable now."""

    meter_id: str
    utility: Utility
    bus_address: str
    gateway_id: str | None
    channel: str | None
    premise: str | None
    room: str | None
    building: str | None
    connection: MeterConnection | None
    online: bool


class CollectorNode(BaseModel):
    gateway: GatewayView  # link_state and online are its parent's link
    meter_count: int  # active meters hanging on it
    meters: list[TopologyMeter]  # empty with ?meters=false


class RootNode(BaseModel):
    gateway: GatewayView  # a DTU or concentrator (or a collector registered without a parent), with its connection
    sim_card: SimCardView | None  # the card in it
    meter_count: int  # active meters hanging on it directly
    meters: list[TopologyMeter]
    collectors: list[CollectorNode]


class MetersWithoutGateway(BaseModel):
    count: int  # active meters behind no gateway (read over HTTP)
    meters: list[TopologyMeter]  # the first of them, in id order
    # Continue with GET /v1/meters?on_gateway=false&status=active&after=…; None when all are listed here
    # (or none were asked for: ?without_gateway_limit=0).
    next_after: str | None


class TenantTopology(BaseModel):
    roots: list[RootNode]
    next_after: str | None  # pass as ?after= for the next page of roots
    without_gateway: MetersWithoutGateway | None  # on the first page only


def _meter_node(record: MeterRecord) -> dict[str, Any]:
    d = record.meter.details
    return {"meter_id": record.meter.meter_id, "utility": d.utility, "bus_address": d.bus_address,
            "gateway_id": d.gateway_id, "channel": d.channel, "premise": d.premise, "room": d.room,
            "building": d.groups.building, "connection": record.connection,
            "online": record.connection is MeterConnection.ONLINE}


async def tenant_topology(session: AsyncSession, tenant_id: str, h: Horizons, *, after: str | None, limit: int,
                          with_meters: bool, without_gateway_limit: int | None) -> dict[str, Any]:
    """A page of roots as trees; ``without_gateway_limit`` None leaves the meters behind no gateway out."""
    roots = await fleet_network_db.topology_roots(session, tenant_id, after=after, limit=limit)
    root_ids = [r.gateway_id for r in roots]
    collectors = await fleet_network_db.collectors_of(session, tenant_id, root_ids)
    hanging = [*root_ids, *(c.gateway_id for c in collectors)]
    links = await gateway_links(session, tenant_id, [*roots, *collectors], h)
    cards = await fleet_network_db.cards_in(session, tenant_id, root_ids)
    connections = await _connections(session, tenant_id, root_ids)
    meters_on: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if with_meters:
        for record in await fleet_db.meters_on(session, tenant_id, hanging, h):
            meters_on[record.meter.details.gateway_id or ""].append(_meter_node(record))
        counts = {gateway_id: len(nodes) for gateway_id, nodes in meters_on.items()}
    else:
        counts = await fleet_db.meter_counts_on(session, tenant_id, hanging)
    collectors_of: dict[str, list[Gateway]] = defaultdict(list)
    for collector in collectors:
        collectors_of[collector.details.parent_gateway_id or ""].append(collector)

    def node(gateway: Gateway) -> dict[str, Any]:
        return {**gateway_view(gateway), **link_fields(links[gateway.gateway_id])}

    trees = [{
        "gateway": {**node(root), "connection": connections.get(root.gateway_id)},
        "sim_card": sim_card_view(cards[root.gateway_id]) if root.gateway_id in cards else None,
        "meter_count": counts.get(root.gateway_id, 0), "meters": meters_on[root.gateway_id],
        "collectors": [{"gateway": node(c), "meter_count": counts.get(c.gateway_id, 0),
                        "meters": meters_on[c.gateway_id]} for c in collectors_of[root.gateway_id]],
    } for root in roots]
    without = None
    if without_gateway_limit is not None:
        without = await _without_gateway(session, tenant_id, h, without_gateway_limit)
    return {"roots": trees, "next_after": root_ids[-1] if len(roots) == limit else None, "without_gateway": without}


async def _without_gateway(session: AsyncSession, tenant_id: str, h: Horizons, limit: int) -> dict[str, Any]:
    search = MeterSearch(status=MeterStatus.ACTIVE, on_gateway=False)
    count = await fleet_db.meter_total(session, tenant_id, search, h)
    page = await fleet_db.meter_page(session, tenant_id, search, h, after=None, limit=limit) if limit else []
    more = len(page) < count
    return {"count": count, "meters": [_meter_node(r) for r in page],
            "next_after": (page[-1].meter.meter_id if page else None) if more else None}


async def _connections(session: AsyncSession, tenant_id: str, gateway_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The link rows of these gateways (at most a page of roots), as ConnectionView reads them."""
    c = gateway_connections.c
    rows = await session.execute(select(gateway_connections).where(c.tenant_id == tenant_id,
                                                                   c.gateway_id.in_(gateway_ids)))
    return {row.gateway_id: row._asdict() for row in rows}
