"""The device registry's HTTP API under /v1: meters here; gateways, SIM cards and files beside it.

Every route is scoped by the caller's tenant; another tenant's device answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from amiflow_runtime.auth import Principal
from amiflow_runtime.http import Caller, RuntimeDep, Tenant, out_of_reach
from amiflow_schemas.events.registry import MeterStatus
from amiflow_schemas.primitives import Utility
from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from ingest import registry_app as handlers
from ingest.adapters import fleet_db
from ingest.adapters import registry_db as rdb
from ingest.adapters.fleet_db import MeterSearch
from ingest.adapters.fleet_http import router as fleet_router
from ingest.adapters.fleet_views import MeterStateView, horizons_of, meter_state_view
from ingest.adapters.registry_files import router as files_router
from ingest.adapters.registry_forms import MeterForm, NewMeterForm, RemovalForm, ReplacementForm
from ingest.adapters.registry_network_http import router as network_router
from ingest.adapters.registry_views import REFUSALS, MeterView, answers_refusals, meter_view
from ingest.core.fleet_state import MeterConnection
from ingest.core.registry import DeviceNotFound

router = APIRouter(prefix="/v1", responses=REFUSALS)
meters = APIRouter(tags=["registry: meters"])

PageSize = Annotated[int, Query(ge=1, le=1000)]
SearchText = Annotated[str | None, Query(min_length=1, max_length=64)]


class MeterPage(BaseModel):
    meters: list[MeterStateView]
    next_after: str | None  # pass as ?after= for the next page; None on the last page
    total: int | None = None  # every page together, when asked for with ?with_total=true


class Replacement(BaseModel):
    removed: MeterView
    installed: MeterView


def _within_reach(caller: Principal, building: str | None, utility: str, meter_id: str) -> None:
    if not caller.covers(site=building, utility=utility):
        raise out_of_reach(f"meter {meter_id}")


async def _in_reach(runtime: Any, tenant: str, caller: Principal, meter_id: str) -> None:
    """An operator limited to sites and duties changes only the meters within them (an unknown one included)."""
    if not caller.limited:
        return
    async with runtime.sessions() as session:
        found = await rdb.meter(session, tenant, meter_id)
    if found is None:
        raise out_of_reach(f"meter {meter_id}")
    _within_reach(caller, found.details.groups.building, found.details.utility.value, meter_id)


@meters.post("/meters", status_code=status.HTTP_201_CREATED, response_model=MeterView)
@answers_refusals
async def register_meter(form: NewMeterForm, runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> Any:
    """Register a meter; it is announced as MeterDefined on amiflow.registry.devices."""
    details = form.to_details()
    _within_reach(caller, details.groups.building, details.utility.value, form.meter_id)
    return meter_view(await handlers.register_meter(runtime, tenant, form.meter_id, details))


@meters.get("/meters", response_model=MeterPage)
async def list_meters(runtime: RuntimeDep, tenant: Tenant, after: str | None = None, limit: PageSize = 100,
                      status: MeterStatus | None = None, gateway_id: str | None = None,
                      q: SearchText = None, utility: Utility | None = None, building: str | None = None,
                      behind_gateway_id: str | None = None, on_gateway: bool | None = None,
                      connection: MeterConnection | None = None, with_total: bool = False) -> Any:
    """The tenant's meters in id order, a page at a time, with their connection state (see the `connection`
    field for the rule) and last report.

    ``q`` matches a meter id prefix or part of the bus address, premise, room or building (any case);
    ``gateway_id`` the meters hanging on that gateway, ``behind_gateway_id`` also those on its collectors;
    ``on_gateway=false`` the meters read over HTTP. ``with_total`` also counts every page together.
    """
    search = MeterSearch(text=q, utility=utility, status=status, building=building, gateway_id=gateway_id,
                         behind_gateway_id=behind_gateway_id, on_gateway=on_gateway, connection=connection)
    h = horizons_of(runtime, tenant)
    async with runtime.sessions() as session:
        page = await fleet_db.meter_page(session, tenant, search, h, after=after, limit=limit)
        total = await fleet_db.meter_total(session, tenant, search, h) if with_total else None
    return {"meters": [meter_state_view(m) for m in page],
            "next_after": page[-1].meter.meter_id if len(page) == limit else None, "total": total}


@meters.get("/meters/{meter_id}", response_model=MeterStateView)
@answers_refusals
async def get_meter(meter_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """One meter, with its connection state and last report."""
    async with runtime.sessions() as session:
        found = await fleet_db.meter_records(session, tenant, [meter_id], horizons_of(runtime, tenant))
    if meter_id not in found:
        raise DeviceNotFound(f"meter {meter_id} is not registered")
    return meter_state_view(found[meter_id])


@meters.put("/meters/{meter_id}", response_model=MeterView)
@answers_refusals
async def update_meter(meter_id: str, form: MeterForm, runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> Any:
    """Replace a meter's details; the same details again change nothing (no event, same revision)."""
    details = form.to_details()
    await _in_reach(runtime, tenant, caller, meter_id)
    _within_reach(caller, details.groups.building, details.utility.value, meter_id)  # nor moved out of reach
    return meter_view(await handlers.update_meter(runtime, tenant, meter_id, details))


@meters.post("/meters/{meter_id}/removal", response_model=MeterView)
@answers_refusals
async def remove_meter(meter_id: str, form: RemovalForm, runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> Any:
    """Take a meter off the network with its last reading; the record stays, with status removed."""
    await _in_reach(runtime, tenant, caller, meter_id)
    return meter_view(await handlers.remove_meter(runtime, tenant, meter_id, form.removed_at, form.removal_reading))


@meters.delete("/meters/{meter_id}", response_model=MeterView)
@answers_refusals
async def delete_meter(meter_id: str, runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> Any:
    """Remove a meter now, without a removal reading (POST …/removal records one)."""
    await _in_reach(runtime, tenant, caller, meter_id)
    return meter_view(await handlers.remove_meter(runtime, tenant, meter_id, None, None))


@meters.post("/meters/{meter_id}/replacement", status_code=status.HTTP_201_CREATED, response_model=Replacement)
@answers_refusals
async def replace_meter(meter_id: str, form: ReplacementForm, runtime: RuntimeDep, tenant: Tenant,
                        caller: Caller) -> Any:
    """Swap a meter: MeterReplaced on the old meter (both readings) and MeterDefined for the new one."""
    await _in_reach(runtime, tenant, caller, meter_id)
    removed, installed = await handlers.replace_meter(runtime, tenant, meter_id, form.to_swap())
    return {"removed": meter_view(removed), "installed": meter_view(installed)}


router.include_router(fleet_router)  # first: /v1/meters/positions before /v1/meters/{meter_id}
router.include_router(meters)
router.include_router(network_router)
router.include_router(files_router)
