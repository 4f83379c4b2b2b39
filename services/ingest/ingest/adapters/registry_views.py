"""What the registry API answers: device views, and refusals as 4xx bodies with every reason."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from amiflow_runtime.http_refusals import InvalidRequest
from amiflow_schemas.events.registry import GatewayState, MeterState, SimCardAspect, SimCardState
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, PositiveInt

from ingest.core.fleet_state import LinkState
from ingest.core.registry import (
    DeviceNotFound,
    Gateway,
    Meter,
    RegistryConflict,
    RegistryRefused,
    SimCard,
    SimCardRevision,
)
from ingest.core.registry_events import gateway_state, meter_state, sim_card_state

P = ParamSpec("P")


class MeterView(MeterState):
    revision: PositiveInt


class ConnectionView(BaseModel):
    """The DTU's link as the gateway last recorded it (refreshed every 30 s while online)."""

    online: bool
    remote_address: str | None
    connected_at: AwareDatetime | None
    disconnected_at: AwareDatetime | None
    last_seen_at: AwareDatetime | None
    frames_in: int
    instance: str


class GatewayView(GatewayState):
    revision: PositiveInt
    connection: ConnectionView | None = None  # None: never connected (or not a DTU / concentrator)
    # The link that carries the gateway now: its own for a DTU or concentrator, its parent's for a
    # collector (online while the link row says so and was refreshed within 120 s). None when retired,
    # and in the answers to changes (POST, PUT, DELETE), which do not look at the link.
    link_state: LinkState | None = None
    online: bool | None = None  # link_state == "online"


class SimCardView(SimCardState):
    revision: PositiveInt


class SimCardHistoryView(SimCardView):
    change: str
    changed: list[SimCardAspect]
    recorded_at: AwareDatetime


class Refusal(BaseModel):
    detail: str
    reasons: list[str]


def meter_view(meter: Meter) -> dict[str, Any]:
    return {**meter_state(meter).model_dump(mode="json"), "revision": meter.revision}


def gateway_view(gateway: Gateway) -> dict[str, Any]:
    return {**gateway_state(gateway).model_dump(mode="json"), "revision": gateway.revision}


def sim_card_view(card: SimCard) -> dict[str, Any]:
    return {**sim_card_state(card).model_dump(mode="json"), "revision": card.revision}


def history_view(entry: SimCardRevision) -> dict[str, Any]:
    return {**sim_card_view(entry.card), "change": entry.change.value,
            "changed": [aspect.value for aspect in entry.changed], "recorded_at": entry.recorded_at.isoformat()}


REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such device in the caller's tenant"},
    409: {"model": Refusal, "description": "The change contradicts the registry (id, address or binding taken)"},
    # InvalidRequest: the runtime's answer to a request that does not fit the route's parameters or body.
    422: {"model": Refusal | InvalidRequest, "description": "The change is not valid; every reason is listed"},
}


def answers_refusals(route: Callable[P, Awaitable[Any]]) -> Callable[P, Awaitable[Any]]:
    """Turn the core's refusals into 404, 409 and 422 answers that list every reason."""

    @functools.wraps(route)
    async def answered(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return await route(*args, **kwargs)
        except DeviceNotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except RegistryConflict as exc:
            return JSONResponse({"detail": "the change conflicts with the registry", "reasons": list(exc.reasons)},
                                status_code=409)
        except RegistryRefused as exc:
            return JSONResponse({"detail": "the registry refused the change", "reasons": list(exc.reasons)},
                                status_code=422)

    return answered
