"""Undoing billing actions through the audit API on SQLite and PostgreSQL: a tariff version is overtaken by the
prices before it, settings go back, a payment is refused with the reason; each audited and linked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from billing.config import BillingSettings
from billing.main import api

pytestmark = pytest.mark.integration

TENANT = "riverside"
NOW = datetime(2026, 7, 15, 10, tzinfo=ZoneInfo("Asia/Shanghai"))
WATER = {"tariff_id": "water", "version_id": "water-2026", "utility": "water", "unit": "m3",
         "effective_from": "2026-01-01T00:00:00+08:00", "tiers": [{"up_to": None, "unit_price": "5.00"}]}


@dataclass
class Billing:
    http: httpx.AsyncClient
    admin = auth_headers(TENANT, roles=("tenant_admin",), subject="boss")

    async def last_action(self, action: str) -> dict[str, Any]:
        answer = await self.http.get("/v1/audit", params={"action": action},
                                     headers=auth_headers(TENANT, roles=("auditor",), subject="aud-1"))
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries[-1]

    async def undo(self, record_id: str) -> httpx.Response:
        return await self.http.post(f"/v1/audit/{record_id}/undo", json={"reason": "wrong prices"},
                                    headers=self.admin)


@pytest.fixture
async def billing(database_url: str) -> AsyncIterator[Billing]:
    app = api(BillingSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://billing") as http:
        yield Billing(http)
    await runtime.engine.dispose()


async def test_a_wrong_tariff_version_is_overtaken_by_the_prices_before_it(billing: Billing) -> None:
    assert (await billing.http.post("/v1/tariffs", json=WATER, headers=billing.admin)).status_code == 201
    wrong = {**WATER, "version_id": "water-2026-07", "effective_from": NOW.isoformat(),
             "tiers": [{"up_to": None, "unit_price": "50.00"}]}
    assert (await billing.http.post("/v1/tariffs", json=wrong, headers=billing.admin)).status_code == 201
    action = await billing.last_action("POST /v1/tariffs")

    undone = await billing.undo(action["id"])
    assert undone.status_code == 200, undone.text
    versions = (await billing.http.get("/v1/tariffs/water", headers=billing.admin)).json()["versions"]
    assert [(v["version_id"], v["tiers"][0]["unit_price"]) for v in versions] == [
        ("water-2026", "5.00"), ("water-2026-07", "50.00"), ("undo-water-2026-07", "5.00")]
    republished = await billing.last_action("POST /v1/tariffs")
    assert republished["undoes"] == action["id"] and republished["who"]["subject"] == "boss"


async def test_changed_settings_go_back(billing: Billing) -> None:
    opened = await billing.http.post("/v1/accounts", headers=billing.admin, json={
        "account_id": "ACC-1", "customer_id": "C-1", "customer_kind": "household",
        "settings": {"low_balance_amount": "20.00", "low_balance_days": 3}})
    assert opened.status_code == 201
    before = opened.json()["settings"]
    changed = await billing.http.put("/v1/accounts/ACC-1/settings", headers=billing.admin,
                                     json={"low_balance_amount": "99.00", "changed_by": "boss"})
    assert changed.status_code == 200
    undone = await billing.undo((await billing.last_action("PUT /v1/accounts/{account_id}/settings"))["id"])
    assert undone.status_code == 200, undone.text
    assert (await billing.http.get("/v1/accounts/ACC-1", headers=billing.admin)).json()["settings"] == before


async def test_a_payment_is_not_undone_and_the_answer_says_why(billing: Billing) -> None:
    await billing.http.post("/v1/accounts", headers=billing.admin, json={
        "account_id": "ACC-1", "customer_id": "C-1", "customer_kind": "household"})
    paid = await billing.http.post("/v1/payments", headers=billing.admin, json={
        "account_id": "ACC-1", "channel": "cash", "provider_transaction_id": "T-1", "amount": "100.00",
        "currency": "CNY"})
    assert paid.status_code == 201
    action = await billing.last_action("POST /v1/payments")
    assert action["outcome"]["ids"]["event_id"] == [paid.json()["event_id"]]
    refused = await billing.undo(action["id"])
    assert refused.status_code == 409 and refused.json()["detail"]["problem"] == "cannot_undo"
