"""Registry API for gateways (with their topology) and SIM cards (with their history)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_schemas.events.registry import MaintenanceState
from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from ingest import registry_app as handlers
from ingest.adapters import fleet_db, gateway_db
from ingest.adapters import registry_db as rdb
from ingest.adapters.fleet_views import MeterStateView, gateway_links, horizons_of, link_fields, meter_state_view
from ingest.adapters.registry_forms import BindingForm, GatewayForm, NewGatewayForm, NewSimCardForm, SimCardForm
from ingest.adapters.registry_views import (
    GatewayView,
    SimCardHistoryView,
    SimCardView,
    answers_refusals,
    gateway_view,
    history_view,
    sim_card_view,
)
from ingest.core.registry import DeviceNotFound, Gateway

router = APIRouter()
gateways = APIRouter(tags=["registry: gateways"])
sim_cards = APIRouter(tags=["registry: SIM cards"])

PageSize = Annotated[int, Query(ge=1, le=1000)]


class GatewayPage(BaseModel):
    gateways: list[GatewayView]
    next_after: str | None


class Topology(BaseModel):
    gateway: GatewayView
    parent: GatewayView | None
    children: list[GatewayView]  # collectors hanging on it
    meters: list[MeterStateView]  # active meters on it and on its collectors; gateway_id and channel say where
    sim_cards: list[SimCardView]


class SimCardPage(BaseModel):
    sim_cards: list[SimCardView]
    next_after: str | None


async def _gateway(runtime: Any, tenant: str, gateway_id: str) -> Gateway:
    async with runtime.sessions() as session:
        found: Gateway | None = await rdb.gateway(session, tenant, gateway_id)
    if found is None:
        raise DeviceNotFound(f"gateway {gateway_id} is not registered")
    return found


@gateways.post("/gateways", status_code=status.HTTP_201_CREATED, response_model=GatewayView)
@answers_refusals
async def register_gateway(form: NewGatewayForm, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Register a DTU, concentrator or collector; registration ids are unique across all tenants."""
    return gateway_view(await handlers.register_gateway(runtime, tenant, form.gateway_id, form.to_details()))


@gateways.get("/gateways", response_model=GatewayPage)
async def list_gateways(runtime: RuntimeDep, tenant: Tenant, after: str | None = None, limit: PageSize = 100,
                        parent_gateway_id: str | None = None) -> Any:
    """The tenant's gateways in id order, each with the state of the link that carries it (link_state, online)."""
    async with runtime.sessions() as session:
        page = await rdb.list_gateways(session, tenant, after=after, limit=limit, parent_gateway_id=parent_gateway_id)
        links = await gateway_links(session, tenant, page, horizons_of(runtime, tenant))
    return {"gateways": [{**gateway_view(g), **link_fields(links[g.gateway_id])} for g in page],
            "next_after": page[-1].gateway_id if len(page) == limit else None}


@gateways.get("/gateways/{gateway_id}", response_model=GatewayView)
@answers_refusals
async def get_gateway(gateway_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The gateway's record and its connection state: online, remote address, last seen, frames."""
    found = await _gateway(runtime, tenant, gateway_id)
    async with runtime.sessions() as session:
        connection = await gateway_db.connection(session, tenant, gateway_id)
        links = await gateway_links(session, tenant, [found], horizons_of(runtime, tenant))
    return {**gateway_view(found), "connection": connection, **link_fields(links[gateway_id])}


@gateways.put("/gateways/{gateway_id}", response_model=GatewayView)
@answers_refusals
async def update_gateway(gateway_id: str, form: GatewayForm, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Replace a gateway's details: firmware, maintenance state, its parent and channel …"""
    return gateway_view(await handlers.update_gateway(runtime, tenant, gateway_id, form.to_details()))


@gateways.delete("/gateways/{gateway_id}", response_model=GatewayView)
@answers_refusals
async def retire_gateway(gateway_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Retire a gateway (its record stays); refused while meters or collectors still hang on it."""
    current = await _gateway(runtime, tenant, gateway_id)
    retired = replace(current.details, maintenance=MaintenanceState.RETIRED)
    return gateway_view(await handlers.update_gateway(runtime, tenant, gateway_id, retired))


@gateways.get("/gateways/{gateway_id}/topology", response_model=Topology)
@answers_refusals
async def gateway_topology(gateway_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The gateway, its parent, its collectors, the meters behind it and its SIM card, each with its link or
    connection state (a collector's link is its parent's; see `connection` on the meters for the rule)."""
    found = await _gateway(runtime, tenant, gateway_id)
    h = horizons_of(runtime, tenant)
    async with runtime.sessions() as session:
        parent_id = found.details.parent_gateway_id
        parent = await rdb.gateway(session, tenant, parent_id) if parent_id else None
        children = await rdb.list_gateways(session, tenant, parent_gateway_id=gateway_id, limit=10_000)
        meters = await fleet_db.meters_behind(session, tenant, gateway_id, h)
        cards = await rdb.list_sim_cards(session, tenant, gateway_id=gateway_id)
        nodes = [found, *([parent] if parent else []), *children]
        links = await gateway_links(session, tenant, nodes, h)
        connection = await gateway_db.connection(session, tenant, gateway_id)

    def node(g: Gateway) -> dict[str, Any]:
        return {**gateway_view(g), **link_fields(links[g.gateway_id])}

    return {"gateway": {**node(found), "connection": connection}, "parent": node(parent) if parent else None,
            "children": [node(c) for c in children],
            "meters": [meter_state_view(m) for m in meters],
            "sim_cards": [sim_card_view(c) for c in cards]}


@sim_cards.post("/sim-cards", status_code=status.HTTP_201_CREATED, response_model=SimCardView)
@answers_refusals
async def register_sim_card(form: NewSimCardForm, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Register a SIM card; bound to a gateway, it takes the place of the card that was in it."""
    return sim_card_view(await handlers.register_sim_card(runtime, tenant, form.iccid, form.to_details()))


@sim_cards.get("/sim-cards", response_model=SimCardPage)
async def list_sim_cards(runtime: RuntimeDep, tenant: Tenant, after: str | None = None, limit: PageSize = 100,
                         gateway_id: str | None = None) -> Any:
    async with runtime.sessions() as session:
        page = await rdb.list_sim_cards(session, tenant, after=after, limit=limit, gateway_id=gateway_id)
    return {"sim_cards": [sim_card_view(c) for c in page],
            "next_after": page[-1].iccid if len(page) == limit else None}


@sim_cards.get("/sim-cards/{iccid}", response_model=SimCardView)
@answers_refusals
async def get_sim_card(iccid: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    async with runtime.sessions() as session:
        card = await rdb.sim_card(session, tenant, iccid)
    if card is None:
        raise DeviceNotFound(f"SIM card {iccid} is not registered")
    return sim_card_view(card)


@sim_cards.put("/sim-cards/{iccid}", response_model=SimCardView)
@answers_refusals
async def update_sim_card(iccid: str, form: SimCardForm, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Replace a card's details: number, plan, quota, usage, expiry, or the gateway it is in."""
    return sim_card_view(await handlers.update_sim_card(runtime, tenant, iccid, form.to_details()))


@sim_cards.put("/sim-cards/{iccid}/binding", response_model=SimCardView)
@answers_refusals
async def bind_sim_card(iccid: str, form: BindingForm, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Put the card into a gateway (a card change for the card that was in it), or take it out (null)."""
    return sim_card_view(await handlers.bind_sim_card(runtime, tenant, iccid, form.gateway_id))


@sim_cards.get("/sim-cards/{iccid}/history", response_model=list[SimCardHistoryView])
@answers_refusals
async def sim_card_history(iccid: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """The card's registration and every card, number and plan change since, oldest first."""
    async with runtime.sessions() as session:
        history = await rdb.sim_card_history(session, tenant, iccid)
    if not history:
        raise DeviceNotFound(f"SIM card {iccid} is not registered")
    return [history_view(entry) for entry in history]


router.include_router(gateways)
router.include_router(sim_cards)
