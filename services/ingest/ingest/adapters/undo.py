"""How registry changes are undone: the compensating request for each, or why there is none.

The registry keeps every device's record (a removal is a status, not a deletion), so a registration is
undone by taking the device out of service again — a meter removed, a gateway retired — and a change of
details by putting the details back as they were (kept in the attempt record by reading the device just
before the change). Readings are facts and are corrected in VEE, never withdrawn here.
"""

from __future__ import annotations

from typing import Any

from amiflow_runtime.audit_undo import (
    ActionRequest,
    CannotUndo,
    Compensation,
    Undoable,
    UndoContext,
    UndoRegistry,
    segment,
)

# The request forms' fields, taken from the device as the API shows it (the rest is state, not details).
METER_FIELDS = ("utility", "profile", "bus_address", "unit", "multiplier", "dial_count", "installation_date",
                "installation_reading", "premise", "room", "location", "groups", "di_order", "schedule", "gateway_id",
                "channel")
GATEWAY_FIELDS = ("kind", "registration_id", "model", "firmware", "parent_gateway_id", "channel", "maintenance")
SIM_CARD_FIELDS = ("imsi", "msisdn", "carrier", "data_plan", "quota_bytes", "used_bytes", "expires_on", "gateway_id")


def _device_path(request: ActionRequest, kind: str, key: str) -> str:
    return f"/v1/{kind}/{segment(request.path_params[key])}"


def _meter(request: ActionRequest) -> str:
    return _device_path(request, "meters", "meter_id")


def _gateway(request: ActionRequest) -> str:
    return _device_path(request, "gateways", "gateway_id")


def _sim_card(request: ActionRequest) -> str:
    return _device_path(request, "sim-cards", "iccid")


def _put_back(context: UndoContext, path: str, fields: tuple[str, ...], what: str) -> Compensation | CannotUndo:
    previous: Any = context.before_json
    if not isinstance(previous, dict):
        return CannotUndo(f"the {what} before the change was not kept")
    return Compensation("PUT", path, {name: previous.get(name) for name in fields})


def remove_registered_meter(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/meters → remove the meter now (its record stays, status removed)."""
    meter_id = context.answer_id("meter_id")
    if context.status != 201 or meter_id is None:
        return CannotUndo("the registration created no meter")
    return Compensation("DELETE", f"/v1/meters/{segment(meter_id)}")


def restore_meter(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/meters/{meter_id} → the meter's details before the change."""
    return _put_back(context, _meter(context.request), METER_FIELDS, "meter")


def retire_registered_gateway(context: UndoContext) -> Compensation | CannotUndo:
    """POST /v1/gateways → retire the gateway (refused while devices hang on it)."""
    gateway_id = context.answer_id("gateway_id")
    if context.status != 201 or gateway_id is None:
        return CannotUndo("the registration created no gateway")
    return Compensation("DELETE", f"/v1/gateways/{segment(gateway_id)}")


def restore_gateway(context: UndoContext) -> Compensation | CannotUndo:
    """PUT or DELETE (retire) /v1/gateways/{gateway_id} → the gateway's details, maintenance state included."""
    return _put_back(context, _gateway(context.request), GATEWAY_FIELDS, "gateway")


def restore_sim_card(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/sim-cards/{iccid} → the card's details before the change."""
    return _put_back(context, _sim_card(context.request), SIM_CARD_FIELDS, "SIM card")


def restore_binding(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/sim-cards/{iccid}/binding → the card back in the gateway it was in (or out of any)."""
    previous: Any = context.before_json
    if not isinstance(previous, dict):
        return CannotUndo("the SIM card before the change was not kept")
    return Compensation("PUT", f"{_sim_card(context.request)}/binding", {"gateway_id": previous.get("gateway_id")})


_REMOVED = "a removed meter cannot be put back in service through the API: register it again under a new id"

UNDO = UndoRegistry(
    undoable={
        "POST /v1/meters": Undoable(remove_registered_meter),
        "PUT /v1/meters/{meter_id}": Undoable(restore_meter, _meter),
        "POST /v1/gateways": Undoable(retire_registered_gateway),
        "PUT /v1/gateways/{gateway_id}": Undoable(restore_gateway, _gateway),
        "DELETE /v1/gateways/{gateway_id}": Undoable(restore_gateway, _gateway),
        "PUT /v1/sim-cards/{iccid}": Undoable(restore_sim_card, _sim_card),
        "PUT /v1/sim-cards/{iccid}/binding": Undoable(restore_binding, _sim_card),
    },
    final={
        "POST /v1/readings": "readings are facts as received: correct a wrong one with an edit in VEE",
        "POST /v1/meters/{meter_id}/removal": _REMOVED,
        "DELETE /v1/meters/{meter_id}": _REMOVED,
        "POST /v1/meters/{meter_id}/replacement": "a meter exchange happened in the field: record another exchange",
        "POST /v1/sim-cards": "a SIM card is not unregistered: take it out of its gateway (PUT …/binding null)",
        "POST /v1/registry/import": "an import applies many rows: change the devices it touched one by one",
    },
)
