"""A simulated month for 1,000 accounts on PostgreSQL reconciles: the sum of each account's ledger equals
its balance, its July e-bill and its last daily settlement, and the tenant's totals agree with the reports.

The month goes through the real parts: accounts, tariffs, recharges, subsidies, callback payments and
move-outs through billing's API; validated and corrected readings through the worker's reading handler
(rating, tier periods, re-rating); every closed day through the settlement job. Amounts are drawn from a
seeded generator, so a failure is reproducible."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.outbox import stage
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import new_envelope
from amiflow_schemas.events.readings import ReadingCorrected, ReadingValidated
from amiflow_schemas.examples import example_payloads
from billing.adapters import db, store
from billing.adapters.monthly_statement import statement_of
from billing.app import reading_handler
from billing.config import BillingSettings
from billing.core.ledger import balance_effect
from billing.main import api
from billing.settlement_app import settle_all
from billing.statements import BillingMonth, Language, render_html

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
TENANT = "market"
HEADERS = {"X-Tenant-Id": TENANT}
ACCOUNTS = 1000
MERCHANTS = 300  # the first 300 also pay for an electricity meter and the monthly property fee
LANES = 4  # accounts are rated in parallel lanes, as a worker's partitions are
READ_DAYS = (6, 11, 16, 21, 26, 32)  # a meter's validated reads, at 00:00 local; the 32nd is August 1st
EXAMPLE = example_payloads()["ReadingValidated"].model_dump(mode="json")
JULY, AUGUST = BillingMonth(2026, 7), BillingMonth(2026, 8)
WATER = {
    "tariff_id": "water", "version_id": "water-2026", "utility": "water", "unit": "m3",
    "effective_from": "2026-01-01T00:00:00+08:00", "tier_period": "month",
    "tiers": [{"up_to": "5", "unit_price": "3.50"}, {"up_to": "12", "unit_price": "5.25"},
              {"up_to": None, "unit_price": "8.90"}],
    "fixed_daily_charge": "0.30"}
POWER = {
    "tariff_id": "power", "version_id": "power-2026", "utility": "electricity", "unit": "kWh",
    "effective_from": "2026-01-01T00:00:00+08:00", "tier_period": "month",
    "tiers": [{"up_to": "200", "unit_price": "0.5283"}, {"up_to": None, "unit_price": "0.7783"}],
    "recurring_charges": [{"name": "Property fee", "amount": "45.00"}]}
# A price rise in the middle of the month: readings across it are split pro rata by time.
WATER_RISE = {**WATER, "version_id": "water-2026-07-16", "effective_from": "2026-07-16T00:00:00+08:00",
              "tiers": [{"up_to": "5", "unit_price": "3.80"}, {"up_to": "12", "unit_price": "5.60"},
                        {"up_to": None, "unit_price": "9.40"}]}


def local(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 7, 1, hour, tzinfo=ZONE) + timedelta(days=day - 1)


def account_id(n: int) -> str:
    return f"ACC-{n:04d}"


class Month:
    """The tenant's month: the API over ASGI, the worker's handler and settlement job, one clock."""

    def __init__(self, http: httpx.AsyncClient, runtime: Any) -> None:
        self.http, self.runtime = http, runtime
        self.handle = reading_handler(runtime.clock)
        self.random = random.Random(20260701)  # simulated amounts: seeded, so a failure reproduces
        self.rated: dict[str, Any] = {}  # meter → its last validated reading's envelope

    def at(self, moment: datetime) -> None:
        self.runtime.clock = FrozenClock(moment)
        self.handle = reading_handler(self.runtime.clock)

    async def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        answer = await self.http.request(method, path, headers=HEADERS, **kwargs)
        assert answer.status_code == expected, answer.text
        return answer

    async def read(self, meter_id: str, utility: str, unit: str, start: datetime, end: datetime,
                   quantity: Decimal) -> None:
        payload = ReadingValidated.model_validate({
            **EXAMPLE, "meter_id": meter_id, "utility": utility, "measured_at": end, "previous_measured_at": start,
            "consumption": quantity, "consumption_unit": unit, "status": "actual", "estimation_method": None,
            "register_consumption": None,
            "registers": [{"register": "total", "value": "1000", "unit": unit}]})
        envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=meter_id, occurred_at=end,
                                recorded_at=end, producer="vee")
        await self._handle(envelope)
        self.rated[meter_id] = envelope

    async def correct(self, meter_id: str, quantity: Decimal) -> None:
        """VEE's correction of the meter's last reading (an operator's edit), which billing re-rates."""
        first = self.rated[meter_id]
        payload = ReadingCorrected.model_validate({
            **first.payload.model_dump(mode="json"), "consumption": quantity, "status": "edited",
            "reading_version": 2, "supersedes_event_id": str(first.event_id), "correction_reason": "manual_edit",
            "edit": {"edited_by": "op-3", "reason_code": "misread", "comment": None}})
        await self._handle(new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key=meter_id,
                                        occurred_at=payload.measured_at, recorded_at=self.runtime.clock.now(),
                                        producer="vee"))

    async def _handle(self, envelope: Any) -> None:
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            await stage(session, db.outbox, await self.handle(session, envelope), now)

    async def settle(self) -> int:
        return await settle_all(self.runtime.sessions, self.runtime.clock, lambda: None, timedelta(minutes=10),
                                concurrency=LANES)


@pytest.fixture
async def month(postgres_database: Any) -> AsyncIterator[Month]:
    # PostgreSQL only: this is the volume test of the ledger's real store, not of the embedded default.
    settings = BillingSettings(database_url=await postgres_database("month"), tenant_names={TENANT: "City Market"})
    app = api(settings)
    runtime = app.state.runtime
    runtime.clock = FrozenClock(local(1, 0) - timedelta(hours=2))
    await runtime.migrate()
    async with asgi_client(app, "http://billing") as http:
        yield Month(http, runtime)
    await runtime.engine.dispose()


async def open_the_market(month: Month) -> None:
    for tariff in (WATER, POWER, WATER_RISE):
        await month.call("POST", "/v1/tariffs", 201, json=tariff)
    month.at(local(1, 0))
    for n in range(ACCOUNTS):
        kind = "merchant" if n < MERCHANTS else "household"
        await month.call("POST", "/v1/accounts", 201, json={
            "account_id": account_id(n), "customer_id": f"C-{n:04d}", "customer_kind": kind,
            "settings": {"low_balance_amount": "20.00", "credit_limit": "50.00" if kind == "merchant" else "0"}})
        meters = [(f"WM-{n:04d}", "water", "water")] + ([(f"EM-{n:04d}", "electricity", "power")] if n < MERCHANTS
                                                        else [])
        for meter_id, utility, tariff_id in meters:
            await month.call("POST", f"/v1/accounts/{account_id(n)}/meters", 201, json={
                "meter_id": meter_id, "utility": utility, "tariff_id": tariff_id,
                "from": local(1).isoformat()})


async def run_the_month(month: Month) -> Decimal:
    """July: an opening recharge, readings every third day, payments when low, a subsidy, corrections,
    move-outs on the 20th; returns what customers paid in (recharges and payments, not subsidies)."""
    paid = Decimal(0)
    month.at(local(1, 9))
    for start in range(0, ACCOUNTS, 500):
        lines = [{"account_id": account_id(n), "amount": str(Decimal(month.random.randrange(50, 400)))}
                 for n in range(start, min(start + 500, ACCOUNTS))]
        answer = await month.call("POST", "/v1/recharges/batch", 200, json={"batch_id": f"JULY-OPEN-{start}",
                                                                            "lines": lines})
        assert answer.json()["accepted"] == len(lines)
        paid += sum(Decimal(line["amount"]) for line in lines)
    moved_out: set[str] = set()
    start = local(1)
    for day in READ_DAYS:
        end = local(day)
        month.at(end + timedelta(hours=1))
        reads = []
        for n in range(ACCOUNTS):
            if account_id(n) in moved_out:
                continue
            reads.append((n, f"WM-{n:04d}", "water", "m3", Decimal(month.random.randrange(0, 900)) / 100))
            if n < MERCHANTS:
                reads.append((n, f"EM-{n:04d}", "electricity", "kWh",
                              Decimal(month.random.randrange(0, 9000)) / 100))

        async def lane(number: int, start: datetime = start, end: datetime = end,
                       reads: list[Any] = reads) -> None:
            for n, meter_id, utility, unit, use in reads:
                if n % LANES == number:
                    await month.read(meter_id, utility, unit, start, end, use)

        await asyncio.gather(*(lane(k) for k in range(LANES)))
        for n in range(0, ACCOUNTS, 37):  # an operator edits some readings; billing re-rates them
            if account_id(n) not in moved_out:
                await month.correct(f"WM-{n:04d}", Decimal(month.random.randrange(0, 900)) / 100)
        await month.settle()
        if day == 32:
            break  # August 1st, 01:00: the month is over
        month.at(end + timedelta(hours=10))
        for n in range(ACCOUNTS):  # customers top up when the balance runs low
            if account_id(n) in moved_out or month.random.random() > 0.4:
                continue
            balance = Decimal((await month.call("GET", f"/v1/accounts/{account_id(n)}/balance", 200)).json()[
                "balance"])
            if balance < 30:
                amount = Decimal(month.random.randrange(100, 300))
                await month.call("POST", "/v1/payments", 201, json={
                    "account_id": account_id(n), "channel": "wechat_pay", "amount": str(amount), "currency": "CNY",
                    "provider_transaction_id": f"WX-{day}-{n}"})
                paid += amount
        if day == 16:
            lines = [{"account_id": account_id(n), "amount": "15.00", "reason": "Summer water subsidy"}
                     for n in range(MERCHANTS, ACCOUNTS, 7)]
            subsidy = await month.call("POST", "/v1/subsidies/batch", 200, json={"batch_id": "AID-JULY",
                                                                                 "lines": lines})
            assert subsidy.json()["accepted"] == len(lines)
            month.at(local(20, 15))
            await month.settle()  # a move-out settles its own day; the days before it must be settled
            for n in range(MERCHANTS, ACCOUNTS, 97):
                await month.call("POST", f"/v1/accounts/{account_id(n)}/move-out", 200, json={})
                moved_out.add(account_id(n))
        start = end
    assert await month.settle() == 0  # a second run settles nothing
    return paid


# Thousands of API calls, each audited (an attempt and an outcome record, two more transactions apiece).
@pytest.mark.timeout(900)
async def test_a_simulated_month_of_1000_accounts_reconciles_ledger_statements_and_balances(month: Month) -> None:
    await open_the_market(month)
    paid = await run_the_month(month)

    ledger_total = statements_total = balances_total = Decimal(0)
    async with month.runtime.sessions() as session:
        for n in range(ACCOUNTS):
            account = await store.load_account(session, TENANT, account_id(n))
            assert account is not None
            ledger = await store.ledger(session, TENANT, account_id(n), limit=100_000)
            folded = sum((balance_effect(e.payload) for e in ledger), Decimal(0))
            balance = (await store.balance_of(session, TENANT, account_id(n)))["balance"]
            statement = await statement_of(session, TENANT, account, JULY, "City Market", Language.EN)
            render_html(statement, Language.EN)  # refuses to print a bill that does not add up
            # The read at August 1st 00:00 is business of August 1st: it is on August's bill.
            august = await statement_of(session, TENANT, account, AUGUST, "City Market", Language.EN)
            settled = await store.settlements(session, TENANT, account_id(n))
            # Every July day exactly once (a moved-out account through its move-out day).
            last_day = date(2026, 7, 20) if account.closed_at else date(2026, 7, 31)
            assert [s.settlement_date for s in settled] == [
                date(2026, 7, 1) + timedelta(days=d) for d in range((last_day - date(2026, 7, 1)).days + 1)]
            totals = statement.totals
            assert statement.opening_balance == 0
            assert statement.closing_balance == settled[-1].closing_balance == august.opening_balance, account_id(n)
            assert folded == august.closing_balance == balance, account_id(n)
            assert statement.closing_balance == totals.payments - totals.charges + totals.other
            ledger_total += folded
            statements_total += august.closing_balance
            balances_total += balance
    assert ledger_total == statements_total == balances_total

    # The month's money in and out as the reports have it, to the cent.
    collections = await month.call("GET", "/v1/reports/daily-collections?from=2026-07-01&to=2026-07-31&format=csv",
                                   200)
    _, *rows = csv.reader(io.StringIO(collections.content.decode("utf-8-sig")))
    assert sum((Decimal(amount) for _, _, _, amount, _ in rows), Decimal(0)) == paid
