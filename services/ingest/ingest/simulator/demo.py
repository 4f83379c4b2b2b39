"""Demo customers for a simulated fleet: tariffs, one prepaid account per two meters, a small opening
recharge and an e-mail contact, through billing's and notify's APIs.

With them `make run` shows the whole loop: readings rated onto accounts, balances running low and out,
reminders in the local mailbox, valves and relays cut off by the commands service and confirmed by the
simulated meters. Everything is idempotent (a 409 means "already there"), so a restart opens nothing
twice. Amounts are drawn from the fleet's seed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from amiflow_schemas.primitives import Utility

from ingest.simulator.models import KINDS
from ingest.simulator.registration import bearer_headers

log = logging.getLogger("ingest.simulator.demo")

# Prices in the spirit of billing.md: water and gas in annual steps, heat flat, electricity in two steps.
TARIFFS: dict[Utility, dict[str, Any]] = {
    Utility.WATER: {"tariff_id": "demo-water", "unit": "m3", "tier_period": "calendar_year",
                    "tiers": [{"up_to": "180", "unit_price": "5.00"}, {"up_to": "260", "unit_price": "7.00"},
                              {"up_to": None, "unit_price": "9.00"}], "fixed_daily_charge": "0.10"},
    Utility.GAS: {"tariff_id": "demo-gas", "unit": "m3", "tier_period": "calendar_year",
                  "tiers": [{"up_to": "350", "unit_price": "3.15"}, {"up_to": None, "unit_price": "3.78"}]},
    Utility.HEAT: {"tariff_id": "demo-heat", "unit": "kWh", "tier_period": "calendar_year",
                   "tiers": [{"up_to": None, "unit_price": "0.16"}]},  # the simulated heat meters count kWh
    Utility.ELECTRICITY: {"tariff_id": "demo-power", "unit": "kWh", "tier_period": "month",
                          "tiers": [{"up_to": "200", "unit_price": "0.4883"}, {"up_to": None, "unit_price": "0.5383"}]},
}


class DemoFailed(RuntimeError):
    """An API refused demo data for a reason other than "already there"."""


async def open_demo_accounts(meters: Sequence[tuple[str, Utility]], tenant: str, billing_url: str,
                             notify_url: str | None, time_zone: str, seed: int, *, deadline_s: float = 120.0,
                             client: httpx.AsyncClient | None = None) -> int:
    """Tariffs, accounts (two meters each), opening recharges and contacts; returns accounts opened now."""
    own = client is None
    http = client or httpx.AsyncClient(timeout=30.0, headers=bearer_headers())
    headers = {"X-Tenant-Id": tenant}
    draw = random.Random(seed)  # demo amounts, reproducible from the fleet's seed
    try:
        year = datetime.now(ZoneInfo(time_zone)).year
        for utility in sorted({u for _, u in meters}):
            tariff = {**TARIFFS[utility], "utility": utility.value, "version_id": f"{TARIFFS[utility]['tariff_id']}-"
                      f"{year}", "effective_from": datetime(year, 1, 1, tzinfo=ZoneInfo(time_zone)).isoformat()}
            await _post(http, f"{billing_url}/v1/tariffs", tariff, headers, deadline_s)
        opened, lines = 0, []
        for number, start in enumerate(range(0, len(meters), 2), start=1):
            account_id = f"DEMO-{number:04d}"
            created = await _post(http, f"{billing_url}/v1/accounts", {
                "account_id": account_id, "customer_id": f"DEMO-C-{number:04d}",
                "customer_kind": "merchant" if number % 3 == 0 else "household",
                "settings": {"low_balance_amount": "20.00", "low_balance_days": 2}}, headers, deadline_s)
            for meter_id, utility in meters[start:start + 2]:
                await _post(http, f"{billing_url}/v1/accounts/{account_id}/meters", {
                    "meter_id": meter_id, "utility": utility.value, "tariff_id": TARIFFS[utility]["tariff_id"]},
                    headers, deadline_s)
            if notify_url:
                await _put(http, f"{notify_url}/v1/contacts/{account_id}-C", {
                    "account_id": account_id, "email": f"{account_id.lower()}@customers.amiflow.example.com",
                    "channels": ["email"], "updated_by": "simulator"}, headers, deadline_s)
            lines.append({"account_id": account_id, "amount": f"{draw.randrange(30, 150)}.00"})
            opened += created
        for first in range(0, len(lines), 500):  # the batch is idempotent per line: a restart credits nothing
            await _post(http, f"{billing_url}/v1/recharges/batch", {
                "batch_id": f"DEMO-OPENING-{first // 500 + 1}", "lines": lines[first:first + 500]}, headers,
                deadline_s)
        log.info("demo customers: %d accounts (%d new) for %d meters", len(lines), opened, len(meters))
        return opened
    finally:
        if own:
            await http.aclose()


def fleet_meters(fleet: Any) -> list[tuple[str, Utility]]:
    """The fleet's meters with their service, in id order."""
    return sorted((m.meter_id, KINDS[m.spec.kind].utility) for m in fleet.meters.values())


async def _post(http: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str], deadline_s: float) -> bool:
    return await _send(http, "POST", url, body, headers, deadline_s)


async def _put(http: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str], deadline_s: float) -> bool:
    return await _send(http, "PUT", url, body, headers, deadline_s)


async def _send(http: httpx.AsyncClient, method: str, url: str, body: Any, headers: dict[str, str],
                deadline_s: float) -> bool:
    """True when created, False when it was already there; retries while the service is starting."""
    deadline = asyncio.get_running_loop().time() + deadline_s
    while True:
        try:
            answer = await http.request(method, url, json=body, headers=headers)
        except httpx.TransportError as exc:
            answer, problem = None, str(exc)
        if answer is not None:
            if answer.status_code in (200, 201):
                return True
            if answer.status_code == 409:
                return False
            problem = f"{answer.status_code} {answer.text[:300]}"
            if answer.status_code < 500:
                raise DemoFailed(f"{method} {url} refused: {problem}")
        if asyncio.get_running_loop().time() > deadline:
            raise DemoFailed(f"{method} {url} did not succeed before the deadline: {problem}")
        await asyncio.sleep(1.0)
