"""A driver for billing's HTTP API on SQLite and PostgreSQL: the real app over ASGI, a frozen clock, and
the ledger postings the worker would make (rated charges, daily settlements) done through the same core."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import decode_event
from billing import posting
from billing.adapters import db, store
from billing.config import BillingSettings
from billing.core.payments import callback_signature
from billing.core.periods import local_date
from billing.core.rating import MeterReading, TierPeriodState, rate_reading
from billing.core.settlement import close_day
from billing.main import api
from pydantic import SecretStr
from sqlalchemy import select

ZONE = ZoneInfo("Asia/Shanghai")
TENANT = "riverside"
HEADERS = {"X-Tenant-Id": TENANT}
WECHAT_SECRET = "wechat-callback-secret-for-tests"
# Water in small steps (billing.md R1's shape at a tenth of the size), a 0.50 daily meter fee and a
# monthly property fee; electricity at one flat price (R2).
WATER_TARIFF = {
    "tariff_id": "water", "version_id": "water-2026", "utility": "water", "unit": "m3",
    "effective_from": "2026-01-01T00:00:00+08:00",
    "tiers": [{"up_to": "10", "unit_price": "5.00"}, {"up_to": "20", "unit_price": "7.00"},
              {"up_to": None, "unit_price": "9.00"}],
    "fixed_daily_charge": "0.50", "recurring_charges": [{"name": "Property fee", "amount": "30.00"}],
}
POWER_TARIFF = {
    "tariff_id": "power", "version_id": "power-2026", "utility": "electricity", "unit": "kWh",
    "effective_from": "2026-01-01T00:00:00+08:00", "tiers": [{"up_to": None, "unit_price": "0.4883"}],
}


@dataclass
class BillingApi:
    """The billing API of one tenant, and the worker's postings for the tests to set the ledger up."""

    http: httpx.AsyncClient
    runtime: Any
    tier_periods: dict[tuple[str, str], dict[datetime, TierPeriodState]] = field(default_factory=dict)

    # For the test modules, which cannot import this conftest.
    TENANT = TENANT
    ZONE = ZONE
    WATER_TARIFF = WATER_TARIFF
    POWER_TARIFF = POWER_TARIFF
    WECHAT_SECRET = WECHAT_SECRET

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers={**HEADERS, **kwargs.pop("headers", {})}, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(path, headers={**HEADERS, **kwargs.pop("headers", {})}, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.put(path, headers={**HEADERS, **kwargs.pop("headers", {})}, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.delete(path, headers={**HEADERS, **kwargs.pop("headers", {})}, **kwargs)

    def at(self, moment: datetime) -> None:
        """Set the clock the API and the postings read."""
        self.runtime.clock = FrozenClock(moment)

    @property
    def now(self) -> datetime:
        now: datetime = self.runtime.clock.now()
        return now

    async def open_account(self, account_id: str, kind: str = "household", **settings: Any) -> dict[str, Any]:
        answer = await self.http.post("/v1/accounts", headers=HEADERS, json={
            "account_id": account_id, "customer_id": f"C-{account_id}", "customer_kind": kind,
            "settings": settings})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def publish(self, tariff: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/v1/tariffs", headers=HEADERS, json=tariff)

    async def link(self, account_id: str, meter_id: str, utility: str, tariff_id: str) -> httpx.Response:
        return await self.http.post(f"/v1/accounts/{account_id}/meters", headers=HEADERS,
                                    json={"meter_id": meter_id, "utility": utility, "tariff_id": tariff_id})

    async def household(self, account_id: str, kind: str = "household", **settings: Any) -> None:
        """An account paying for a water meter WM-<id> and an electricity meter EM-<id> from now."""
        for tariff in (WATER_TARIFF, POWER_TARIFF):
            await self.publish(tariff)  # 409 once published: versions never change
        await self.open_account(account_id, kind, **settings)
        for meter, utility, tariff_id in (("WM", "water", "water"), ("EM", "electricity", "power")):
            answer = await self.link(account_id, f"{meter}-{account_id}", utility, tariff_id)
            assert answer.status_code == 201, answer.text

    async def pay(self, account_id: str, amount: Any, transaction: str, currency: str = "CNY",
                  channel: str = "wechat_pay") -> httpx.Response:
        return await self.http.post("/v1/payments", headers=HEADERS, json={
            "account_id": account_id, "channel": channel, "provider_transaction_id": transaction,
            "amount": amount, "currency": currency})

    async def callback(self, provider: str, body: bytes, secret: str = WECHAT_SECRET,
                       signed_at: datetime | None = None, signature: str | None = None) -> httpx.Response:
        timestamp = str(int((signed_at or self.now).timestamp()))
        signature = signature or callback_signature(secret.encode(), timestamp, body)
        return await self.http.post(f"/v1/payments/callbacks/{provider}", content=body, headers={
            **HEADERS, "Content-Type": "application/json", "X-Amiflow-Timestamp": timestamp,
            "X-Amiflow-Signature": signature})

    async def balance(self, account_id: str) -> Decimal:
        answer = await self.http.get(f"/v1/accounts/{account_id}/balance", headers=HEADERS)
        assert answer.status_code == 200, answer.text
        return Decimal(answer.json()["balance"])

    async def rate(self, account_id: str, meter_id: str, tariff_id: str, hours: int, quantity: str) -> Any:
        """Rate a reading of the ``hours`` before now and post its charge, as the worker's rating would."""
        async with self.runtime.sessions() as session, session.begin():
            await posting.lock_account(session, TENANT, account_id)
            account = await store.load_account(session, TENANT, account_id)
            tariff = await store.load_tariff(session, TENANT, tariff_id)
            assert account is not None and tariff is not None
            reading = MeterReading(uuid.uuid4(), meter_id, tariff.utility, self.now - timedelta(hours=hours),
                                   self.now, Decimal(quantity), tariff.unit, ())
            periods = self.tier_periods.setdefault((account_id, tariff_id), {})
            rating = rate_reading(reading, account, tariff, periods)
            periods.update(rating.periods)
            await posting.post(session, TENANT, account, [rating.charge], self.now)
        return rating.charge

    async def settle(self, account_id: str, through: date) -> None:
        """Settle every unsettled local day of the account up to ``through``, as the daily settlement would."""
        async with self.runtime.sessions() as session, session.begin():
            await posting.lock_account(session, TENANT, account_id)
            account = await store.load_account(session, TENANT, account_id)
            row = await store.balance_of(session, TENANT, account_id)
            assert account is not None and row is not None
            tariffs = await store.load_tariffs(session, TENANT, {link.tariff_id for link in account.links})
            day = row["settled_through"] + timedelta(days=1) if row["settled_through"] else local_date(
                account.opened_at, ZONE)
            previous = await store.settlements(session, TENANT, account_id, row["settled_through"],
                                               row["settled_through"]) if row["settled_through"] else []
            opening = previous[-1].closing_balance if previous else Decimal(0)
            while day <= through:
                closing = close_day(account, tariffs, day, opening,
                                    await store.entries_of_day(session, TENANT, account_id, day))
                if closing.postings:
                    await posting.post(session, TENANT, account, closing.postings, self.now)
                await store.emit(session, [store.envelope_of(closing.settlement, TENANT, account_id, self.now,
                                                             uuid.uuid4())], self.now)
                opening, day = closing.settlement.closing_balance, day + timedelta(days=1)

    async def staged(self, *event_types: str) -> list[Any]:
        """Events staged in the outbox for Kafka, oldest first."""
        async with self.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(db.outbox).where(db.outbox.c.topic != "amiflow.audit")
                                       .order_by(db.outbox.c.id))).all()
        events = [decode_event(r.message_value) for r in rows]
        return [e for e in events if not event_types or e.event_type in event_types]


@pytest.fixture
async def billing_api(database_url: str) -> AsyncIterator[BillingApi]:
    """Billing's API on an empty database; WeChat Pay callbacks have a secret, Alipay ones have none."""
    settings = BillingSettings(database_url=database_url, tenant_names={TENANT: "Riverside Water & Power"},
                               payment_provider_secrets={"wechat_pay": SecretStr(WECHAT_SECRET)})
    app = api(settings)
    runtime = app.state.runtime
    runtime.clock = FrozenClock(datetime(2026, 7, 15, 10, tzinfo=ZONE))
    await runtime.migrate()
    async with asgi_client(app, "http://billing") as http:
        yield BillingApi(http, runtime)
    await runtime.engine.dispose()

