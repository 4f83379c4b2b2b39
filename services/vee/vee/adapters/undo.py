"""How VEE's operator actions are undone: the compensating request for each, or why there is none.

A reading edit is undone by another edit that puts back the value the slot showed before (kept in the
attempt record by reading the slot just before the edit), so the edit log shows both — nothing is erased.
A slot that had no value before gets its value deleted again (it is estimated, as it was).
"""

from __future__ import annotations

from datetime import datetime, timedelta
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

MAIN_REGISTER = "total"  # the register an edit sets (vee.md §3: an edit is the slot's register value)


def _slot_before(request: ActionRequest) -> str:
    # The slot exactly as the edit names it: [measured_at, measured_at + 1 s) holds that one slot.
    at = datetime.fromisoformat(request.path_params["measured_at"])
    until = at + timedelta(seconds=1)
    return (f"/v1/meters/{segment(request.path_params['meter_id'])}/readings"
            f"?from={segment(at.isoformat())}&to={segment(until.isoformat())}&limit=1")


def _value_before(points: list[dict[str, Any]]) -> str | None:
    if not points:
        return None
    registers = points[0].get("registers") or []
    main = next((r for r in registers if r.get("register") == MAIN_REGISTER), registers[0] if registers else None)
    return None if main is None else str(main["value"])


def restore_edited_value(context: UndoContext) -> Compensation | CannotUndo:
    """POST …/readings/{measured_at}/edits → an edit back to the slot's value before (or deleting it again)."""
    points = context.before_json
    if not isinstance(points, list):
        return CannotUndo("the slot's value before the edit was not kept")
    path = context.request.path_params
    return Compensation("POST", f"/v1/meters/{segment(path['meter_id'])}/readings/"
                                f"{segment(path['measured_at'])}/edits",
                        {"value": _value_before(points), "edited_by": context.actor, "reason_code": "undo",
                         "comment": context.reason[:2000]})


def restore_district(context: UndoContext) -> Compensation | CannotUndo:
    """PUT /v1/districts/{district_id} → the district as it was; a new district cannot be removed by the API."""
    district_id = context.request.path_params["district_id"]
    districts = context.before_json
    if not isinstance(districts, list):
        return CannotUndo("the districts before the change were not kept")
    previous = next((d for d in districts if d.get("district_id") == district_id), None)
    if previous is None:
        return CannotUndo(f"district {district_id} did not exist before; the API cannot remove a district")
    return Compensation("PUT", f"/v1/districts/{segment(district_id)}",
                        {"name": previous["name"], "inflow_meter_ids": previous["inflow_meter_ids"],
                         "population": previous["population"], "updated_by": context.actor})


UNDO = UndoRegistry(
    undoable={
        "POST /v1/meters/{meter_id}/readings/{measured_at}/edits": Undoable(restore_edited_value, _slot_before),
        "PUT /v1/districts/{district_id}": Undoable(restore_district, lambda _request: "/v1/districts"),
    },
    final={
        "POST /v1/alarms/{alarm_id}/ack": "an acknowledgement stays: the alarm was seen",
        "POST /v1/rules": "a rule version cannot be withdrawn (data was checked with it): publish a version with "
                          "the parameters to apply from now on",
    },
)
