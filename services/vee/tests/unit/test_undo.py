"""Which compensating request undoes each VEE action, decided from the audit record alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext
from vee.adapters.undo import UNDO
from vee.config import VeeSettings
from vee.main import api

NOW = datetime(2026, 11, 11, tzinfo=UTC)
EDIT = "POST /v1/meters/{meter_id}/readings/{measured_at}/edits"
SLOT = {"meter_id": "WM-1", "measured_at": "2026-11-02T00:00:00+08:00"}


def context(action: str, path: dict[str, str], before: dict[str, Any] | None) -> UndoContext:
    method, route = action.split(" ", 1)
    return UndoContext(request=ActionRequest(method, route, path, {}, None), status=201, ids={}, before=before,
                       actor="op-7", reason="misread", now=NOW)


def test_every_declared_action_is_a_route_of_the_api() -> None:
    paths = api(VeeSettings(database_url="sqlite+aiosqlite:///:memory:")).openapi()["paths"]
    actions = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(UNDO.undoable) | set(UNDO.final) <= actions


def test_the_slot_before_an_edit_is_read_exactly() -> None:
    assert UNDO.before_query(ActionRequest("POST", EDIT.split(" ")[1], SLOT, {}, None)) == (
        "/v1/meters/WM-1/readings?from=2026-11-02T00%3A00%3A00%2B08%3A00&to=2026-11-02T00%3A00%3A01%2B08%3A00"
        "&limit=1")


def test_an_edit_is_undone_by_an_edit_back_to_the_main_registers_value() -> None:
    points = [{"registers": [{"register": "T1", "value": "5"}, {"register": "total", "value": "110.5"}]}]
    undo = UNDO.compensation(context(EDIT, SLOT, {"status": 200, "json": points}))
    assert undo == Compensation("POST", "/v1/meters/WM-1/readings/2026-11-02T00%3A00%3A00%2B08%3A00/edits",
                                {"value": "110.5", "edited_by": "op-7", "reason_code": "undo", "comment": "misread"})


def test_an_edit_of_an_empty_slot_is_undone_by_deleting_the_value_again() -> None:
    undo = UNDO.compensation(context(EDIT, SLOT, {"status": 200, "json": []}))
    assert isinstance(undo, Compensation) and undo.body["value"] is None


def test_a_district_goes_back_but_a_new_one_cannot_be_removed() -> None:
    previous = {"district_id": "DMA-7", "name": "North", "inflow_meter_ids": ["BM-1"], "population": 900}
    path = {"district_id": "DMA-7"}
    assert UNDO.compensation(context("PUT /v1/districts/{district_id}", path,
                                     {"status": 200, "json": [previous]})) == Compensation(
        "PUT", "/v1/districts/DMA-7", {"name": "North", "inflow_meter_ids": ["BM-1"], "population": 900,
                                       "updated_by": "op-7"})
    assert isinstance(UNDO.compensation(context("PUT /v1/districts/{district_id}", path,
                                                {"status": 200, "json": []})), CannotUndo)
