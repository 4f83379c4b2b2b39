"""`make run`'s demo customers: the simulator opens tariffs, accounts, recharges and contacts through the real
billing and notify APIs (in process, on PostgreSQL), and opening them again changes nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from amiflow_runtime.testing import auth_headers, create_database
from billing.config import BillingSettings
from billing.main import api as billing_api
from ingest.simulator.demo import fleet_meters, open_demo_accounts
from ingest.simulator.fleet import Fleet, FleetSpec
from notify.config import NotifySettings
from notify.main import api as notify_api

pytestmark = pytest.mark.e2e

TENANT = "demo-e2e"


async def _apps(postgres_admin_url: str) -> tuple[Any, Any]:
    billing = billing_api(BillingSettings(database_url=await create_database(postgres_admin_url, "demob")))
    notify = notify_api(NotifySettings(database_url=await create_database(postgres_admin_url, "demon")))
    for app in (billing, notify):
        await app.state.runtime.migrate()
    return billing, notify


def test_demo_customers_are_opened_once_with_two_meters_a_recharge_and_a_contact(postgres_admin_url: str) -> None:
    asyncio.run(_check(postgres_admin_url))


async def _check(postgres_admin_url: str) -> None:
    billing, notify = await _apps(postgres_admin_url)
    fleet = Fleet.build(FleetSpec(meters=7, dtus=1, seed=5, prefix="DEMO", tenant=TENANT))
    meters = fleet_meters(fleet)
    mounts = {"http://billing": httpx.ASGITransport(app=billing), "http://notify": httpx.ASGITransport(app=notify)}
    try:
        async with httpx.AsyncClient(mounts=mounts, headers=auth_headers(TENANT)) as http:
            opened = await open_demo_accounts(meters, TENANT, "http://billing", "http://notify", "Asia/Shanghai", 5,
                                              deadline_s=5, client=http)
            assert opened == 4  # seven meters, two per account
            headers = {"X-Tenant-Id": TENANT}
            balances = []
            for number in range(1, 5):
                account = (await http.get(f"http://billing/v1/accounts/DEMO-{number:04d}", headers=headers)).json()
                assert len(account["meters"]) == (1 if number == 4 else 2)
                balance = (await http.get(f"http://billing/v1/accounts/DEMO-{number:04d}/balance",
                                          headers=headers)).json()
                balances.append(Decimal(balance["balance"]))
                contacts = (await http.get(f"http://notify/v1/accounts/DEMO-{number:04d}/contacts",
                                           headers=headers)).json()
                assert [c["contact"]["email"] for c in contacts] == [f"demo-{number:04d}@customers.amiflow.example.com"]
            assert all(30 <= b < 150 for b in balances)
            again = await open_demo_accounts(meters, TENANT, "http://billing", "http://notify", "Asia/Shanghai", 5,
                                             deadline_s=5, client=http)
            assert again == 0
            for number, before in enumerate(balances, start=1):
                balance = (await http.get(f"http://billing/v1/accounts/DEMO-{number:04d}/balance",
                                          headers=headers)).json()
                assert Decimal(balance["balance"]) == before  # the opening recharge is credited once
    finally:
        for app in (billing, notify):
            await app.state.runtime.engine.dispose()
