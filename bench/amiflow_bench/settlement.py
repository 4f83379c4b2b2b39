"""Daily settlement of N accounts against a set-based SQL statement doing the same sum (issue 9).

The database is loaded set-based (INSERT … SELECT over generate_series) with the rows billing itself
writes for N prepaid accounts: the tariff, each account's AccountOpened and MeterLinkedToAccount, its
meter link, yesterday's settled recharge and meter fee, today's three rated charges (and every fourth
account's recharge), the balance row. The envelopes are billing's own encodings of template events with
the per-account values put in; a sample is decoded and encoded again to prove the text is what billing
would have stored. Then, on the same durable PostgreSQL:

(a) one INSERT … SELECT computes every account's closing balance of the day: yesterday's closing, plus
    the day's ledger effects, minus the meter fee of each meter linked when the day starts;
(b) billing's settlement job (`settle_all`, its clock just past midnight and the delay) settles the day.

Every DailySettled (in the outbox and in the projection) is compared with (a) in one SQL join, and every
account must have exactly one settlement of the day.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import psutil
from amiflow_runtime.clock import FrozenClock
from amiflow_schemas import decode_event, encode_event, new_envelope
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, LinkReason
from amiflow_schemas.events.billing import ChargeApplied, ChargeKind, ChargeLine, PaymentChannel, PaymentReceived
from amiflow_schemas.events.tariffs import TariffPublished, TariffTier, TierPeriod
from amiflow_schemas.primitives import Unit, Utility
from billing import settlement_app
from billing.config import BillingSettings
from billing.core import accounts as account_core
from billing.core import tariffs as tariff_core
from billing.core.ledger import LedgerEntry
from billing.core.settlement import close_day, fixed_daily_charges
from billing.main import build_runtime
from billing.settlement_app import day_event_id, settle_all
from sqlalchemy.engine import make_url

from amiflow_bench.environment import BenchEnv, bench_env

# The goal's million accounts take about 40 minutes of settlement on the shared 2-core machine (at ~450
# accounts/s), so `make bench` settles a tenth of them; the ratio to the baseline is what scales.
SCALES = {"quick": 2_000, "full": 100_000}
GOAL_ACCOUNTS, GOAL_RATIO = 1_000_000, 2.5
TENANT = "bench"
ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 14)  # the day settled; the day before was settled already
DELAY = timedelta(minutes=10)  # the worker's default BILLING_SETTLEMENT_DELAY_S
FEE, PRICE, LOW_AMOUNT, TOP_UP = Decimal("0.50"), Decimal("3.50"), Decimal("20.00"), Decimal("50.00")
# Every 50th account's balance ends the day 0.30 above the low threshold: the fee takes it below, so the
# settlement also emits BalanceLow. Every 4th other account recharges during the day.
LOW_EVERY, TOP_UP_EVERY = 50, 4
SAMPLE = 200  # rows per table decoded and encoded again


def _local(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZONE)


YESTERDAY = DAY - timedelta(days=1)
OPENED = _local(YESTERDAY)
RECHARGED = _local(YESTERDAY, 9, 0, 3)
SETTLED_YESTERDAY = _local(DAY, 0, 10, 30)  # when yesterday's settlement ran
READ_ENDS = [_local(DAY) + timedelta(hours=8 * k) for k in range(3)]  # readings every 8 hours
RATED = [end + timedelta(minutes=2) for end in READ_ENDS]  # a reading is rated two minutes after it ends
TOPPED_UP = _local(DAY, 12, 0, 3)

# Placeholders in the template events, replaced per account by the loading SQL.
ACCOUNT, METER = "ACC-PLACEHOLDER", "WM-PLACEHOLDER"
EVENT_ID, CAUSE_ID = "00000000-0000-4000-8000-00000000e1d0", "00000000-0000-4000-8000-00000000c0de"
RECHARGE, CLOSING = Decimal("987654.32"), Decimal("987653.82")  # CLOSING = RECHARGE - FEE
QUANTITY, COST, PERIOD_COST, AMOUNT = Decimal("0.777"), Decimal("8888.88888"), Decimal("6666.66666"), \
    Decimal("7777.77")
ID_PLACEHOLDERS = (EVENT_ID, CAUSE_ID)


def _envelope(payload: Any, at: datetime, event_id: str = EVENT_ID, cause: str | None = None) -> str:
    """Billing's encoding of one template event, as store.envelope_of makes it."""
    at = at.astimezone(UTC)  # billing's clock runs in UTC
    envelope = new_envelope(payload, event_id=uuid.UUID(event_id), tenant_id=TENANT, key=ACCOUNT,
                            occurred_at=at, recorded_at=at, producer="billing",
                            correlation_id=uuid.UUID(cause) if cause else None,
                            causation_id=uuid.UUID(cause) if cause else None)
    return encode_event(envelope).decode()


def tariff_event() -> TariffPublished:
    return TariffPublished(
        tariff_id="water", version_id="water-2026", utility=Utility.WATER, unit=Unit.M3, currency="CNY",
        tier_period=TierPeriod.MONTH, effective_from=_local(date(2026, 1, 1)),
        tiers=(TariffTier(up_to=Decimal(5), unit_price=PRICE),
               TariffTier(up_to=Decimal(12), unit_price=Decimal("5.25")),
               TariffTier(up_to=None, unit_price=Decimal("8.90"))),
        register_prices=(), fixed_daily_charge=FEE, recurring_charges=(), published_at=_local(date(2025, 12, 1)),
        description=None)


def templates() -> dict[str, str]:
    """One encoded event per kind of row the loader writes, with placeholders for the per-account values."""
    settings = AccountSettings(credit_limit=Decimal(0), low_balance_amount=LOW_AMOUNT, low_balance_days=3,
                               restore_threshold=Decimal(0), tier_size_factor=Decimal(1), cut_off_policy_id=None,
                               exemptions=())
    opened = account_core.open_account(ACCOUNT, f"C-{ACCOUNT}", CustomerKind.HOUSEHOLD, "CNY", ZONE.key, YESTERDAY,
                                       settings, OPENED.astimezone(UTC))
    account = account_core.evolve(None, opened)
    linked = account_core.link_meter(account, METER, Utility.WATER, "water", OPENED.astimezone(UTC),
                                     LinkReason.CONNECTED)
    account = account_core.evolve(account, linked)
    tariffs = {"water": tariff_core.evolve(None, tariff_event())}

    def recharge(amount: Decimal, transaction: str, at: datetime) -> PaymentReceived:
        return PaymentReceived(account_id=ACCOUNT, channel=PaymentChannel.WECHAT_PAY,
                               provider_transaction_id=f"{transaction}-{ACCOUNT}", amount=amount, currency="CNY",
                               paid_at=at - timedelta(seconds=3))

    paid = recharge(RECHARGE, "PAY1", RECHARGED)
    [fee] = fixed_daily_charges(account, tariffs, YESTERDAY)
    closed = close_day(account, tariffs, YESTERDAY, Decimal(0), [LedgerEntry(uuid.uuid4(), RECHARGED, paid)])
    charge = ChargeApplied(
        account_id=ACCOUNT, kind=ChargeKind.CONSUMPTION, meter_id=METER, utility=Utility.WATER,
        reading_event_id=uuid.UUID(CAUSE_ID), period_start=OPENED, period_end=OPENED + timedelta(hours=8),
        quantity=QUANTITY, quantity_unit=Unit.M3,
        lines=(ChargeLine(tariff_version_id="water-2026", tier=1, register=None, quantity=QUANTITY, unit_price=PRICE,
                          cost=COST),),
        amount=AMOUNT, currency="CNY", tier_period_cost=PERIOD_COST)
    found = {
        "opened": _envelope(opened, OPENED), "linked": _envelope(linked, OPENED),
        "recharged": _envelope(paid, RECHARGED), "fee": _envelope(fee, SETTLED_YESTERDAY),
        "settled": _envelope(closed.settlement, SETTLED_YESTERDAY),
        "topped_up": _envelope(recharge(TOP_UP, "PAY2", TOPPED_UP), TOPPED_UP),
    }
    for k, (end, rated) in enumerate(zip(READ_ENDS, RATED, strict=True), start=1):
        reading = charge.model_copy(update={"period_start": end - timedelta(hours=8), "period_end": end})
        found[f"charge{k}"] = _envelope(reading, rated, cause=CAUSE_ID)
    return found


def _filled(*values: tuple[str, str]) -> str:
    """SQL putting each SQL expression where its placeholder stands in the template given as $1."""
    sql = "$1::text"
    for placeholder, expression in values:
        sql = f"replace({sql}, '{placeholder}', {expression})"
    return sql


def _amount(placeholder: Decimal, expression: str) -> tuple[str, str]:
    # Decimals are JSON strings; numeric's text has the scale Decimal arithmetic gives (3.50 x 0.123 = 0.43050).
    return f'"{placeholder}"', f"""'"' || ({expression})::text || '"'"""


# Each account's amounts, drawn from its number: charges of 0.100-0.999 m3 at 3.50 (tier 1 of a month).
PLAN = f"""
CREATE TEMP TABLE plan AS
WITH drawn AS (
    SELECT n, 'ACC-' || lpad(n::text, 7, '0') AS account_id, 'WM-' || lpad(n::text, 7, '0') AS meter_id,
           (100 + (n * 7 + 131) % 900) * 0.001 AS q1, (100 + (n * 11 + 262) % 900) * 0.001 AS q2,
           (100 + (n * 13 + 393) % 900) * 0.001 AS q3,
           CASE WHEN n % {TOP_UP_EVERY} = 0 AND n % {LOW_EVERY} <> 0 THEN {TOP_UP} ELSE 0 END AS topped_up
    FROM generate_series(1, $1::int) AS n),
priced AS (
    SELECT *, q1 * {PRICE} AS cost1, q2 * {PRICE} AS cost2, q3 * {PRICE} AS cost3, q1 * {PRICE} AS period_cost1,
           (q1 + q2) * {PRICE} AS period_cost2, (q1 + q2 + q3) * {PRICE} AS period_cost3
    FROM drawn)
SELECT *, round(period_cost1, 2) AS amount1, round(period_cost2, 2) - round(period_cost1, 2) AS amount2,
       round(period_cost3, 2) - round(period_cost2, 2) AS amount3,
       CASE WHEN n % {LOW_EVERY} = 0 THEN {LOW_AMOUNT + FEE + Decimal("0.20")} + round(period_cost3, 2)
            ELSE 100.00 + (n * 37) % 400 END AS recharge
FROM priced
"""
LEDGER = ("INSERT INTO ledger_entries (tenant_id, event_id, account_id, business_day, recorded_at, event_type, "
          "effect, envelope) ")


def loading_statements() -> list[tuple[str, str | None, tuple[Any, ...]]]:
    """(SQL, template or None, further parameters) in order; every statement is set-based."""
    account = (ACCOUNT, "account_id")
    meter = (METER, "meter_id")
    ids = (EVENT_ID, "id")
    closing = _amount(CLOSING, f"recharge - {FEE}")
    statements: list[tuple[str, str | None, tuple[Any, ...]]] = [
        (f"INSERT INTO account_events (tenant_id, event_id, account_id, seq, envelope) SELECT '{TENANT}', id, "
         f"account_id, 1, {_filled(ids, account)} FROM (SELECT gen_random_uuid()::text AS id, * FROM plan) AS p",
         "opened", ()),
        (f"INSERT INTO account_events (tenant_id, event_id, account_id, seq, envelope) SELECT '{TENANT}', id, "
         f"account_id, 2, {_filled(ids, account, meter)} FROM (SELECT gen_random_uuid()::text AS id, * FROM plan) AS p",
         "linked", ()),
        (f"INSERT INTO meter_links (tenant_id, meter_id, linked_at, account_id, unlinked_at) "
         f"SELECT '{TENANT}', meter_id, $1, account_id, NULL FROM plan", None, (OPENED,)),
        (f"{LEDGER} SELECT '{TENANT}', id, account_id, $2, $3, 'PaymentReceived', recharge, "
         f"{_filled(ids, account, _amount(RECHARGE, 'recharge'))} "
         f"FROM (SELECT gen_random_uuid()::text AS id, * FROM plan) AS p", "recharged", (YESTERDAY, RECHARGED)),
        (f"{LEDGER} SELECT '{TENANT}', fee_id, account_id, $2, $3, 'ChargeApplied', -{FEE}, "
         f"{_filled((EVENT_ID, 'fee_id'), account, meter)} FROM plan JOIN day_ids USING (n)",
         "fee", (YESTERDAY, SETTLED_YESTERDAY)),
        (f"INSERT INTO daily_settlements (tenant_id, account_id, settlement_date, event_id, closing_balance, "
         f"envelope) SELECT '{TENANT}', account_id, $2, settled_id, recharge - {FEE}, "
         f"{_filled((EVENT_ID, 'settled_id'), account, _amount(RECHARGE, 'recharge'), closing)} "
         f"FROM plan JOIN day_ids USING (n)", "settled", (YESTERDAY,)),
    ]
    for k, rated in enumerate(RATED, start=1):
        values = (ids, (CAUSE_ID, "cause"), account, meter, _amount(QUANTITY, f"q{k}"), _amount(COST, f"cost{k}"),
                  _amount(PERIOD_COST, f"period_cost{k}"), _amount(AMOUNT, f"amount{k}"))
        statements.append((
            f"{LEDGER} SELECT '{TENANT}', id, account_id, $2, $3, 'ChargeApplied', -amount{k}, {_filled(*values)} "
            f"FROM (SELECT gen_random_uuid()::text AS id, gen_random_uuid()::text AS cause, * FROM plan) AS p",
            f"charge{k}", (DAY, rated)))
    statements += [
        (f"{LEDGER} SELECT '{TENANT}', id, account_id, $2, $3, 'PaymentReceived', topped_up, {_filled(ids, account)} "
         f"FROM (SELECT gen_random_uuid()::text AS id, * FROM plan WHERE topped_up > 0) AS p",
         "topped_up", (DAY, TOPPED_UP)),
        ("INSERT INTO payment_keys (tenant_id, key, event_id, account_id) SELECT tenant_id, 'wechat_pay:' || "
         "CASE WHEN business_day = $1 THEN 'PAY1-' ELSE 'PAY2-' END || account_id, event_id, account_id "
         "FROM ledger_entries WHERE event_type = 'PaymentReceived'", None, (YESTERDAY,)),
        (f"INSERT INTO account_balances (tenant_id, account_id, balance, status, currency, time_zone, "
         f"settled_through, updated_at) SELECT '{TENANT}', account_id, "
         f"recharge - {FEE} - round(period_cost3, 2) + topped_up, 'normal', 'CNY', '{ZONE.key}', $1, $2 FROM plan",
         None, (YESTERDAY, RATED[-1])),
    ]
    return statements


async def connect(url: str) -> asyncpg.Connection:
    parts = make_url(url)
    return await asyncpg.connect(host=parts.host, port=parts.port, user=parts.username, password=parts.password,
                                 database=parts.database)


async def load(conn: asyncpg.Connection, accounts: int) -> dict[str, int]:
    """The accounts, their tariff and yesterday's and today's ledger, as billing would have written them."""
    found = templates()
    tariff = new_envelope(tariff_event(), event_id=uuid.uuid4(), tenant_id=TENANT, key="water",
                          occurred_at=OPENED, recorded_at=OPENED, producer="billing")
    async with conn.transaction():
        await conn.execute("INSERT INTO tariff_events (tenant_id, event_id, tariff_id, version_id, seq, envelope) "
                           "VALUES ($1, $2, 'water', 'water-2026', 1, $3)", TENANT, str(tariff.event_id),
                           encode_event(tariff).decode())
        await conn.execute(PLAN, accounts)
        # Yesterday's settlement ids are the job's own (uuid5 of tenant/account/day), so a re-run keeps them.
        await conn.execute("CREATE TEMP TABLE day_ids (n int PRIMARY KEY, fee_id text, settled_id text)")
        await conn.copy_records_to_table("day_ids", records=(
            (n, str(day_event_id(TENANT, f"ACC-{n:07d}", YESTERDAY, "posting-0")),
             str(day_event_id(TENANT, f"ACC-{n:07d}", YESTERDAY, "settled"))) for n in range(1, accounts + 1)))
        for sql, template, parameters in loading_statements():
            await conn.execute(sql, *((found[template],) if template else ()), *parameters)
    await conn.execute("ANALYZE")  # what autovacuum would have done long before midnight
    tables = ("account_events", "tariff_events", "meter_links", "ledger_entries", "payment_keys",
              "daily_settlements", "account_balances")
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


async def check_load(conn: asyncpg.Connection) -> None:
    """Every balance is its ledger's sum, and sampled rows are billing's own encoding of their events."""
    wrong = await conn.fetchval(
        "SELECT count(*) FROM account_balances b LEFT JOIN (SELECT tenant_id, account_id, sum(effect) AS total "
        "FROM ledger_entries GROUP BY 1, 2) AS l USING (tenant_id, account_id) "
        "WHERE l.total IS DISTINCT FROM b.balance")
    if wrong:
        raise AssertionError(f"{wrong} loaded balances differ from their ledger")
    for table in ("account_events", "ledger_entries", "daily_settlements", "tariff_events"):
        for row in await conn.fetch(f"SELECT envelope FROM {table} ORDER BY random() LIMIT {SAMPLE}"):
            if encode_event(decode_event(row["envelope"].encode())).decode() != row["envelope"]:
                raise AssertionError(f"a loaded {table} row is not billing's encoding of its event: {row['envelope']}")


BASELINE = f"""
INSERT INTO settlement_baseline (tenant_id, account_id, settlement_date, closing_balance)
SELECT b.tenant_id, b.account_id, $1::date, s.closing_balance + coalesce(e.effects, 0) - {FEE} * coalesce(m.meters, 0)
FROM account_balances AS b
JOIN daily_settlements AS s ON s.tenant_id = b.tenant_id AND s.account_id = b.account_id
                           AND s.settlement_date = b.settled_through
LEFT JOIN (SELECT tenant_id, account_id, sum(effect) AS effects FROM ledger_entries WHERE business_day = $1::date
           GROUP BY tenant_id, account_id) AS e ON e.tenant_id = b.tenant_id AND e.account_id = b.account_id
LEFT JOIN (SELECT tenant_id, account_id, count(*) AS meters FROM meter_links
           WHERE linked_at <= $2 AND (unlinked_at IS NULL OR unlinked_at > $2)
           GROUP BY tenant_id, account_id) AS m ON m.tenant_id = b.tenant_id AND m.account_id = b.account_id
WHERE b.settled_through = $1::date - 1
"""


async def baseline(conn: asyncpg.Connection) -> float:
    """Seconds of the set-based statement (best of two, committed each time): every account's closing balance."""
    await conn.execute("CREATE TABLE settlement_baseline (tenant_id text, account_id text, settlement_date date, "
                       "closing_balance numeric, PRIMARY KEY (tenant_id, account_id, settlement_date))")
    best = float("inf")
    for _ in range(2):
        await conn.execute("TRUNCATE settlement_baseline")
        started = time.perf_counter()
        await conn.execute(BASELINE, DAY, _local(DAY))
        best = min(best, time.perf_counter() - started)
    return best


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("ledger_entries", "daily_settlements", "outbox")}


async def check_settled(conn: asyncpg.Connection, accounts: int) -> dict[str, Any]:
    """Every account's DailySettled (outbox and projection) against the baseline, all of them, in SQL."""
    await conn.execute("CREATE TEMP TABLE emitted AS SELECT convert_from(message_value, 'UTF8')::jsonb AS event "
                       "FROM outbox")
    by_type = dict(await conn.fetch("SELECT event->>'event_type', count(*) FROM emitted GROUP BY 1 ORDER BY 1"))
    settled_events = ("SELECT event->>'tenant_id' AS tenant_id, event->'payload'->>'account_id' AS account_id, "
                      "(event->'payload'->>'settlement_date')::date AS settlement_date, "
                      "(event->'payload'->>'closing_balance')::numeric AS closing_balance "
                      "FROM emitted WHERE event->>'event_type' = 'DailySettled'")
    projected = "SELECT tenant_id, account_id, settlement_date, closing_balance FROM daily_settlements"
    figures: dict[str, Any] = {}
    for name, settled in (("outbox", settled_events), ("projection", projected)):
        figures[f"{name}_accounts_settled_once"] = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT account_id FROM ({settled}) AS s WHERE settlement_date = $1 "
            f"GROUP BY tenant_id, account_id HAVING count(*) = 1) AS once", DAY)
        figures[f"{name}_closings_differing_from_baseline"] = await conn.fetchval(
            f"SELECT count(*) FROM settlement_baseline AS b "
            f"FULL JOIN (SELECT * FROM ({settled}) AS d WHERE settlement_date = $1) AS s "
            f"ON s.tenant_id = b.tenant_id AND s.account_id = b.account_id AND s.settlement_date = b.settlement_date "
            f"WHERE b.closing_balance IS DISTINCT FROM s.closing_balance", DAY)
    figures["balances_settled_through_the_day"] = await conn.fetchval(
        "SELECT count(*) FROM account_balances WHERE settled_through = $1", DAY)
    figures["balances_differing_from_baseline"] = await conn.fetchval(
        "SELECT count(*) FROM account_balances AS a FULL JOIN settlement_baseline AS b USING (tenant_id, account_id) "
        "WHERE a.balance IS DISTINCT FROM b.closing_balance OR a.settled_through IS DISTINCT FROM $1", DAY)
    figures["every_account_settled_once_and_equal_to_baseline"] = (
        figures["outbox_accounts_settled_once"] == figures["projection_accounts_settled_once"] == accounts
        and by_type.get("DailySettled") == accounts and not figures["outbox_closings_differing_from_baseline"]
        and not figures["projection_closings_differing_from_baseline"]
        and not figures["balances_differing_from_baseline"])
    figures["outbox_events"] = by_type
    return figures


def _cpu_s(process: psutil.Process | None) -> float:
    """CPU seconds of a process and its children (PostgreSQL: the postmaster and every backend)."""
    if process is None:
        return 0.0
    total = 0.0
    for one in (process, *process.children(recursive=True)):
        try:
            times = one.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def settle(url: str, postgres: psutil.Process | None, profile: bool, lanes: int | None) -> dict[str, Any]:
    """Billing's settlement job over every account, timed; its clock just past midnight and the delay."""
    settings = BillingSettings(database_url=url)
    lanes = lanes or settings.settlement_concurrency  # the worker's setting unless told
    runtime = build_runtime(settings, "bench")
    runtime.clock = FrozenClock(_local(DAY + timedelta(days=1)) + DELAY + timedelta(minutes=1))
    wakes: list[float] = []
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time: the machine is shared
    try:
        cpu, pg_cpu = time.process_time(), _cpu_s(postgres)
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        days = await settle_all(runtime.sessions, runtime.clock, lambda: wakes.append(time.perf_counter()), DELAY,
                                lanes)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        cpu, pg_cpu = time.process_time() - cpu, _cpu_s(postgres) - pg_cpu
        load = os.getloadavg()[0]
    finally:
        await runtime.engine.dispose()
    figures: dict[str, Any] = {"settlement_s": round(elapsed, 3), "days_settled": days,
                               "settlement_cpu_s": {"billing_process": round(cpu, 2), "postgresql": round(pg_cpu, 2)},
                               # Others' work on the machine stretches the wall time, not the CPU seconds.
                               "machine_load_average_1m": round(load, 2),
                               "settlement_concurrency": lanes,
                               "accounts_per_transaction": getattr(settlement_app, "CHUNK_ACCOUNTS", 1),
                               "relay_woken": len(wakes)}
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        figures["profile"] = out.getvalue()
    return figures


async def run(database: Callable[[str], Awaitable[str]], postgres: psutil.Process | None, accounts: int,
              profile: bool = False, lanes: int | None = None) -> dict[str, Any]:
    """Load, baseline, settle and check on a new database from ``database``; ``postgres`` for CPU figures."""
    url = await database("settle")
    runtime = build_runtime(BillingSettings(database_url=url), "bench")
    await runtime.migrate()
    await runtime.engine.dispose()
    conn = await connect(url)
    try:
        started = time.perf_counter()
        loaded = await load(conn, accounts)
        load_s = time.perf_counter() - started
        await check_load(conn)
        baseline_s = await baseline(conn)
        before = await table_counts(conn)
        settled = await settle(url, postgres, profile, lanes)
        after = await table_counts(conn)
        checked = await check_settled(conn, accounts)
    finally:
        await conn.close()
    ratio = settled["settlement_s"] / baseline_s
    return {
        "accounts": accounts,
        "settlement_date": DAY.isoformat(),
        "load_s": round(load_s, 2),
        "rows_loaded": loaded,
        "baseline_sql_s": round(baseline_s, 3),
        "baseline_accounts_per_s": round(accounts / baseline_s),
        "baseline_timing": "best of 2 runs of the statement, each committed",
        **settled,
        "settlement_accounts_per_s": round(accounts / settled["settlement_s"]),
        "settlement_cpu_us_per_account": {name: round(seconds / accounts * 1e6)
                                          for name, seconds in settled["settlement_cpu_s"].items()},
        "ratio_settlement_to_baseline": round(ratio, 2),
        "rows_written": {**{table: after[table] - before[table] for table in after},
                         "account_balances_updated": checked["balances_settled_through_the_day"]},
        **checked,
        "goal": f"daily settlement of {GOAL_ACCOUNTS:,} accounts <= {GOAL_RATIO} x the set-based SQL baseline",
        "goal_ratio": GOAL_RATIO,
        "measured_at_goal_scale": accounts >= GOAL_ACCOUNTS,
        "ratio_within_goal": ratio <= GOAL_RATIO,
        "goal_met": accounts >= GOAL_ACCOUNTS and ratio <= GOAL_RATIO and checked[
            "every_account_settled_once_and_equal_to_baseline"],
    }


def measure(env: BenchEnv, scale: str, accounts: int | None = None, profile: bool = False,
            lanes: int | None = None) -> dict[str, Any]:
    """Settle N accounts' day with billing's job and with one SQL statement; figures, checks and the goal."""
    figures = asyncio.run(run(env.database, env.processes().get("postgresql"), accounts or SCALES[scale], profile,
                              lanes))
    return {"scale": scale, **figures}


def main() -> None:
    """Run the settlement benchmark alone and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="quick")
    parser.add_argument("--accounts", type=int, help="settle this many accounts instead of the scale's")
    parser.add_argument("--profile", action="store_true", help="cProfile the settlement job (slows it down)")
    parser.add_argument("--lanes", type=int, help="chunks settled at once (default: the worker's setting); "
                                                  "profile with 1, or lanes share each other's time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amiflow-bench-settlement-") as folder, bench_env(Path(folder)) as env:
        figures = measure(env, args.scale, args.accounts, args.profile, args.lanes)
    profile = figures.pop("profile", None)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if profile:
        print(profile)


if __name__ == "__main__":
    main()
