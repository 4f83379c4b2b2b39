"""Which compensating request undoes each registry change, decided from the audit record alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext
from ingest.adapters.undo import UNDO
from ingest.config import IngestSettings
from ingest.main import api

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def context(action: str, *, path: dict[str, str] | None = None, status: int = 200,
            ids: dict[str, list[str]] | None = None, before: dict[str, Any] | None = None) -> UndoContext:
    method, route = action.split(" ", 1)
    return UndoContext(request=ActionRequest(method, route, path or {}, {}, None), status=status, ids=ids or {},
                       before=before, actor="op-7", reason="wrong meter", now=NOW)


def test_every_declared_action_is_a_route_of_the_api() -> None:
    paths = api(IngestSettings(database_url="sqlite+aiosqlite:///:memory:")).openapi()["paths"]
    actions = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(UNDO.undoable) | set(UNDO.final) <= actions


def test_a_registration_is_undone_by_taking_the_device_out_of_service() -> None:
    assert UNDO.compensation(context("POST /v1/meters", status=201, ids={"meter_id": ["WM-1"]})) == Compensation(
        "DELETE", "/v1/meters/WM-1")
    assert UNDO.compensation(context("POST /v1/gateways", status=201, ids={"gateway_id": ["DTU-1"]})) == (
        Compensation("DELETE", "/v1/gateways/DTU-1"))


def test_changed_details_are_put_back_from_the_device_as_it_was() -> None:
    meter = {"meter_id": "WM-1", "utility": "water", "room": "1201", "status": "active", "revision": 3,
             "removal": None, "replaces_meter_id": None}
    undo = UNDO.compensation(context("PUT /v1/meters/{meter_id}", path={"meter_id": "WM-1"},
                                     before={"status": 200, "json": meter}))
    assert isinstance(undo, Compensation) and undo.path == "/v1/meters/WM-1"
    assert undo.body["room"] == "1201" and not {"status", "revision", "removal", "meter_id"} & set(undo.body)


def test_a_sim_card_goes_back_into_its_gateway() -> None:
    undo = UNDO.compensation(context("PUT /v1/sim-cards/{iccid}/binding", path={"iccid": "8986"},
                                     before={"status": 200, "json": {"iccid": "8986", "gateway_id": "DTU-1"}}))
    assert undo == Compensation("PUT", "/v1/sim-cards/8986/binding", {"gateway_id": "DTU-1"})


def test_readings_and_removals_are_not_undone() -> None:
    for action in ("POST /v1/readings", "POST /v1/meters/{meter_id}/removal", "POST /v1/registry/import"):
        assert isinstance(UNDO.compensation(context(action)), CannotUndo)
