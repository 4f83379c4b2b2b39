"""The fleet at a glance, for the operator console: counts, the map's positions and the whole topology.

Read-only (GET: the `read` permission) and scoped by the caller's tenant. Included in the registry's
router before the meters' routes, so /v1/meters/positions is not taken for a meter id.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any

from amiflow_runtime.auth import Permission, needs
from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.registry import MeterStatus
from amiflow_schemas.primitives import ExactDecimal, Utility
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel

from ingest.adapters import fleet_db, fleet_network_db
from ingest.adapters.fleet_db import MeterSearch, Position
from ingest.adapters.fleet_topology import TenantTopology, tenant_topology
from ingest.adapters.fleet_views import CONNECTION_RULE, horizons_of
from ingest.core.fleet_state import MeterConnection, gateway_counts, meter_counts, sim_card_counts

router = APIRouter(tags=["console: fleet"])

MAX_POSITIONS = 50_000


class MeterOverview(BaseModel):
    total: int  # every registered meter, removed ones included
    active: int
    by_status: dict[str, int]  # active, removed
    by_utility: dict[str, int]  # active meters
    online: int  # online + offline + never_seen == active
    offline: int
    never_seen: int
    read_today: int  # active meters with a reading accepted since the tenant's midnight


class GatewayOverview(BaseModel):
    total: int
    by_kind: dict[str, int]  # dtu, concentrator, collector
    by_maintenance: dict[str, int]  # in_service, maintenance, retired
    online: int  # DTUs and concentrators that are not retired, by their link (collectors never connect)
    offline: int
    never_connected: int


class SimCardOverview(BaseModel):
    total: int
    in_gateway: int
    spare: int  # in no gateway
    expired: int  # expires_on before the tenant's today
    expiring_soon: int  # within 30 days
    over_quota: int  # used_bytes at or above quota_bytes


class Overview(BaseModel):
    meters: MeterOverview
    gateways: GatewayOverview
    sim_cards: SimCardOverview
    as_of: AwareDatetime


class MeterPosition(BaseModel):
    meter_id: str
    utility: Utility
    latitude: ExactDecimal  # WGS 84 decimal degrees, as text like every registry decimal
    longitude: ExactDecimal
    building: str | None
    status: MeterStatus
    online: bool
    connection: MeterConnection | None  # None: removed


class MapBounds(BaseModel):
    min_lat: ExactDecimal
    min_lon: ExactDecimal
    max_lat: ExactDecimal
    max_lon: ExactDecimal


class PositionPage(BaseModel):
    items: list[MeterPosition]
    bounds: MapBounds | None  # first page only (no ?after=): the box around every located meter matched
    located: int | None  # first page only: how many located meters match, over all pages
    next_after: str | None  # pass as ?after= for the next page; None on the last page


@router.get("/overview", response_model=Overview, openapi_extra=needs(Permission.READ), description=(
        "Counts of the tenant's meters, gateways and SIM cards, as of now. " + CONNECTION_RULE +
        " Gateways: a DTU or concentrator that is not retired is online while its link is held now (the same "
        "120 s rule), never_connected when it never logged in; collectors connect through their parent and are "
        "counted by kind only."))
async def overview(runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Meters online / offline / never seen, gateways by link, SIM cards by binding and expiry."""
    h = horizons_of(runtime, tenant)
    async with runtime.sessions() as session:
        meters = meter_counts(await fleet_db.meter_groups(session, tenant, h))
        gateways = gateway_counts(await fleet_network_db.gateway_groups(session, tenant, h))
        cards = sim_card_counts(await fleet_network_db.sim_card_groups(session, tenant, h))
    return {"meters": asdict(meters), "gateways": asdict(gateways), "sim_cards": asdict(cards), "as_of": h.now}


@router.get("/meters/positions", response_model=PositionPage, openapi_extra=needs(Permission.READ))
async def meter_positions(runtime: RuntimeDep, tenant: Tenant, after: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=MAX_POSITIONS)] = 10_000,
                          utility: Utility | None = None, status: MeterStatus | None = None,
                          building: str | None = None) -> Any:
    """Every located meter of the tenant for a map, in id order, up to 50,000 a page (see `connection` on
    GET /v1/meters/{meter_id} for what online means)."""
    search = MeterSearch(utility=utility, status=status, building=building)
    h = horizons_of(runtime, tenant)
    async with runtime.sessions() as session:
        page = await fleet_db.positions(session, tenant, search, h, after=after, limit=limit)
        box = await fleet_db.bounds(session, tenant, search, h) if after is None else None
    bounds = None if box is None else {"min_lat": _text(box.min_lat), "min_lon": _text(box.min_lon),
                                       "max_lat": _text(box.max_lat), "max_lon": _text(box.max_lon)}
    # A city's page is 50,000 markers: written as plain JSON here rather than validated item by item.
    return JSONResponse({"items": [_marker(p) for p in page], "bounds": bounds,
                         "located": box.located if box else (0 if after is None else None),
                         "next_after": page[-1].meter_id if len(page) == limit else None})


def _text(value: Decimal) -> str:
    return format(value, "f")


def _marker(position: Position) -> dict[str, Any]:
    connection = position.connection
    return {"meter_id": position.meter_id, "utility": position.utility, "latitude": _text(position.latitude),
            "longitude": _text(position.longitude), "building": position.building, "status": position.status,
            "online": connection is MeterConnection.ONLINE, "connection": connection.value if connection else None}


@router.get("/topology", response_model=TenantTopology, openapi_extra=needs(Permission.READ))
async def topology(runtime: RuntimeDep, tenant: Tenant, after: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 20, meters: bool = True,
                   without_gateway_limit: Annotated[int, Query(ge=0, le=1000)] = 100) -> Any:
    """The tenant's collection topology, a page of roots at a time: each DTU or concentrator (in gateway id
    order, retired ones left out) with its SIM card, its meters and its collectors with theirs, every node
    with its link or connection state. ``meters=false`` gives the counts without the meters. The first page
    (no ``after``) also lists the active meters behind no gateway, up to ``without_gateway_limit``; the rest
    of them come from GET /v1/meters?on_gateway=false&status=active&after=<without_gateway.next_after>."""
    h = horizons_of(runtime, tenant)
    async with runtime.sessions() as session:
        return await tenant_topology(session, tenant, h, after=after, limit=limit, with_meters=meters,
                                     without_gateway_limit=without_gateway_limit if after is None else None)
