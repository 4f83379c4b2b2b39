"""Which compensating request undoes each billing action, decided from the audit record alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amiflow_runtime.audit_undo import ActionRequest, CannotUndo, Compensation, UndoContext
from billing.adapters.undo import UNDO
from billing.config import BillingSettings
from billing.main import api

NOW = datetime(2026, 7, 15, 2, tzinfo=UTC)
TARIFF = {"tariff_id": "water", "utility": "water", "unit": "m3", "currency": "CNY", "tier_period": "calendar_year",
          "versions": [{"version_id": "w-2025", "effective_from": "2025-01-01T00:00:00+08:00",
                        "tiers": [{"up_to": None, "unit_price": "4.00"}], "register_prices": [],
                        "fixed_daily_charge": "0", "recurring_charges": []},
                       {"version_id": "w-2026", "effective_from": "2026-01-01T00:00:00+08:00",
                        "tiers": [{"up_to": None, "unit_price": "5.00"}], "register_prices": [],
                        "fixed_daily_charge": "0.50", "recurring_charges": []}]}


def context(action: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None,
            body: Any = None, before: dict[str, Any] | None = None) -> UndoContext:
    method, route = action.split(" ", 1)
    return UndoContext(request=ActionRequest(method, route, path or {}, query or {}, body), status=201, ids={},
                       before=before, actor="boss", reason="wrong prices", now=NOW)


def test_every_declared_action_is_a_route_of_the_api() -> None:
    paths = api(BillingSettings(database_url="sqlite+aiosqlite:///:memory:")).openapi()["paths"]
    actions = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(UNDO.undoable) | set(UNDO.final) <= actions


def test_a_tariff_version_in_force_is_undone_by_the_prices_before_it_from_now_on() -> None:
    body = {"tariff_id": "water", "version_id": "w-2026b", "effective_from": "2026-07-01T00:00:00+08:00"}
    undo = UNDO.compensation(context("POST /v1/tariffs", body=body, before={"status": 200, "json": TARIFF}))
    assert isinstance(undo, Compensation) and undo.path == "/v1/tariffs"
    assert undo.body["version_id"] == "undo-w-2026b" and undo.body["tiers"] == [{"up_to": None, "unit_price": "5.00"}]
    assert undo.body["fixed_daily_charge"] == "0.50"
    assert datetime.fromisoformat(undo.body["effective_from"]) == datetime(2026, 7, 15, 2, 0, 1, tzinfo=UTC)


def test_a_tariff_version_still_ahead_is_overtaken_right_after_it_starts() -> None:
    body = {"tariff_id": "water", "version_id": "w-2027", "effective_from": "2027-01-01T00:00:00+08:00"}
    undo = UNDO.compensation(context("POST /v1/tariffs", body=body, before={"status": 200, "json": TARIFF}))
    assert isinstance(undo, Compensation)
    assert datetime.fromisoformat(undo.body["effective_from"]) == datetime.fromisoformat(
        "2027-01-01T00:00:01+08:00")


def test_a_tariffs_first_version_cannot_be_withdrawn() -> None:
    body = {"tariff_id": "water", "version_id": "w-1", "effective_from": "2026-01-01T00:00:00+08:00"}
    undo = UNDO.compensation(context("POST /v1/tariffs", body=body, before={"status": 404}))
    assert isinstance(undo, CannotUndo) and "first version" in undo.reason


def test_settings_go_back_to_what_they_were() -> None:
    settings = {"credit_limit": "0", "low_balance_amount": "20.00"}
    undo = UNDO.compensation(context("PUT /v1/accounts/{account_id}/settings", path={"account_id": "ACC-1"},
                                     before={"status": 200, "json": {"settings": settings}}))
    assert undo == Compensation("PUT", "/v1/accounts/ACC-1/settings", {**settings, "changed_by": "boss"})


def test_a_meter_link_ends_where_it_began_and_an_unlink_is_linked_again() -> None:
    link = UNDO.compensation(context("POST /v1/accounts/{account_id}/meters", path={"account_id": "ACC-1"},
                                     body={"meter_id": "WM-1", "from": "2026-07-15T10:30:00+08:00"}))
    assert link == Compensation("DELETE", "/v1/accounts/ACC-1/meters/WM-1?at=2026-07-15T10%3A30%3A00%2B08%3A00"
                                          "&reason=operator")
    account = {"meters": [{"meter_id": "WM-1", "utility": "water", "tariff_id": "water", "active": True}]}
    relink = UNDO.compensation(context("DELETE /v1/accounts/{account_id}/meters/{meter_id}",
                                       path={"account_id": "ACC-1", "meter_id": "WM-1"},
                                       before={"status": 200, "json": account}))
    assert relink == Compensation("POST", "/v1/accounts/ACC-1/meters", {
        "meter_id": "WM-1", "utility": "water", "tariff_id": "water", "reason": "operator"})


def test_money_received_is_not_taken_back_by_undo() -> None:
    for action in ("POST /v1/payments", "POST /v1/recharges/batch", "POST /v1/subsidies/batch"):
        refusal = UNDO.compensation(context(action))
        assert isinstance(refusal, CannotUndo) and "reversal" in refusal.reason
