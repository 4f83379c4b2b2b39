"""Fault tests: while the fleet simulator runs, kill -9 each worker and start it again, stop and start the
Kafka broker, stop and start PostgreSQL; then nothing is lost and nothing is done twice.

The platform runs on a broker and a PostgreSQL server of its own (tests/e2e/faults.py), every process
started on its own. 100 simulated meters behind 5 DTUs: the CJ/T 188 water, gas and heat meters push
their reading every minute, the DL/T 645 electricity meters are polled on the hour and whenever their
DTU logs in. Two meters per prepaid account; every third account opens with a few cents, runs dry at
its first charge and is cut off (the default policy cuts every utility), and is recharged mid-run and
restored. Opening an account also opens its meters' valves and relays (commands' open_on_connect).

Billing needs a span to rate: VEE validates on the tenant's hourly wall-clock grid, and billing rates a
slot only once its account pays for the meter. So the tenant's zone is picked to put the next slot
just after the accounts open, each meter's reading of the slot before comes in through ingest's API
first, and the tenant's VEE rule lets a reading count for a slot up to 30 minutes away.

Where the counts come from:
- sent: the simulator's delivery ledger (every reply a DTU wrote to its socket, so a reply held across
  a drop counts once, when it went out) plus the readings posted through the API;
- received: ingest's accepted_readings (its idempotency record) and ReadingReceived on the topic;
- validated: VEE's inbox of applied ReadingReceived ids, and its published points (series_points)
  against ReadingValidated / ReadingCorrected on amiflow.vee.readings;
- billed: billing's inbox, ledger entries, balances against a fold of amiflow.billing.ledger;
- commands and notifications: the lifecycle and deliveries topics, their tables, the meters' own
  record of the commands they obeyed and the mail sink's messages.

The figures go to data/reliability/faults.json.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from amiflow_runtime.paths import project_root
from amiflow_runtime.testing import auth_headers
from amiflow_schemas import Envelope
from ingest.simulator import Delivery, DtuBehaviour, Fleet, FleetSpec, ReplyKind
from ingest.simulator.bus import cjt188_reading
from ingest.simulator.demo import TARIFFS, fleet_meters
from ingest.simulator.electricity import ElectricityMeter
from ingest.simulator.models import KINDS, Cjt188Meter, SimMeter

from .faults import (
    PROCESSES,
    FleetThread,
    Stack,
    next_slot,
    query,
    read_topics,
    run_async,
    wait_for_progress,
    wait_until_drained,
    zone_with_slot_ahead,
)

pytestmark = pytest.mark.e2e

TENANT = "faults"
DRY = Decimal("0.01")  # the opening recharge of every third account: gone at its first charge
DEAD_LETTERS = tuple(f"amiflow.dlq.{service}" for service in ("ingest", "vee", "billing", "commands", "notify"))
TOPICS = ("amiflow.ingest.readings", "amiflow.vee.readings", "amiflow.billing.ledger", "amiflow.billing.balance",
          "amiflow.commands.lifecycle", "amiflow.notify.deliveries", *DEAD_LETTERS)
CREDITS = ("PaymentReceived", "SubsidyGranted")
DEBITS = ("ChargeApplied", "RefundIssued", "AdjustmentPosted", "RecurringChargePosted")
OUTAGE_S = 15.0  # how long the broker and the database stay down
METERS, PUSH_INTERVAL_S = 100, 60.0  # about 1.5 readings a second: within what VEE keeps up with on 2 cores
# A reading a DTU wrote into its link this close to the gateway being killed may have died in the
# gateway's socket buffer or mid-transaction: no DTU protocol acknowledges a push, so no side can know.
IN_FLIGHT = timedelta(seconds=2)
PIPELINE = ("accepted", "validated", "rated")  # readings into ingest, through VEE, into billing
ARRIVAL = timedelta(seconds=5)  # from a DTU writing a reply to the gateway stamping it, at most
FIGURES = project_root() / "data" / "reliability" / "faults.json"


def fleet_spec(zone: str) -> FleetSpec:
    # No random drops: the faults are the test's own. A short reconnect backoff keeps outages short.
    return FleetSpec(meters=METERS, dtus=METERS // 20, seed=7, prefix="FLT", tenant=TENANT, push_rate=1.0,
                     schedule="hourly", time_zone=zone,
                     behaviour=DtuBehaviour(backoff_s=(1.0, 8.0), push_interval_s=PUSH_INTERVAL_S))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Five minutes: starting the stack and opening the accounts take that long on a loaded machine.
    zone = zone_with_slot_ahead(datetime.now(UTC), timedelta(minutes=5))
    running = Stack(tmp_path_factory.mktemp("faults"), TENANT, zone)
    try:
        running.start_servers()
        running.start(*PROCESSES)
        problems = running.wait_ready()
        assert not problems, f"not ready: {problems}\n" + "\n".join(running.log_tail(n) for n in problems)
        phase("stack ready", running.folder)
        yield running
    finally:
        running.stop()


# ---------------------------------------------------------------------------------------------
# Customers and the hour before


def _send(http: httpx.Client, method: str, url: str, body: Any) -> None:
    answer = http.request(method, url, json=body)
    assert answer.status_code in (200, 201), f"{method} {url}: {answer.status_code} {answer.text[:500]}"


def open_accounts(stack: Stack, fleet: Fleet) -> dict[str, str]:
    """Tariffs, one account per two meters paying from now on, contacts and opening recharges;
    returns each account's kind ("dry" or "funded")."""
    billing, notify = stack.api("billing"), stack.api("notify")
    zone = ZoneInfo(stack.zone)
    meters = fleet_meters(fleet)
    draw = random.Random(7)
    kinds, lines = {}, []
    with httpx.Client(headers=auth_headers(tenant=TENANT), timeout=30) as http:
        year = datetime.now(zone).year
        for utility in sorted({u for _, u in meters}):
            _send(http, "POST", f"{billing}/v1/tariffs", {
                **TARIFFS[utility], "utility": utility.value, "version_id": f"{TARIFFS[utility]['tariff_id']}-{year}",
                "effective_from": datetime(year, 1, 1, tzinfo=zone).isoformat()})
        for number, first in enumerate(range(0, len(meters), 2), start=1):
            account_id = f"ACC-{number:04d}"
            _send(http, "POST", f"{billing}/v1/accounts", {
                "account_id": account_id, "customer_id": f"C-{number:04d}", "customer_kind": "household",
                "settings": {"low_balance_amount": "20.00", "low_balance_days": 2}})
            for meter_id, utility in meters[first:first + 2]:
                _send(http, "POST", f"{billing}/v1/accounts/{account_id}/meters", {
                    "meter_id": meter_id, "utility": utility.value, "tariff_id": TARIFFS[utility]["tariff_id"]})
            _send(http, "PUT", f"{notify}/v1/contacts/{account_id}-C", {
                "account_id": account_id, "email": f"{account_id.lower()}@customers.amiflow.example.com",
                "channels": ["email"], "updated_by": "faults"})
            kinds[account_id] = "dry" if number % 3 == 0 else "funded"
            amount = DRY if kinds[account_id] == "dry" else Decimal(draw.randrange(30, 150))
            lines.append({"account_id": account_id, "amount": str(amount)})
        _send(http, "POST", f"{billing}/v1/recharges/batch", {"batch_id": "OPENING", "lines": lines})
    return kinds


def tolerate_push_clocks(stack: Stack, since: datetime) -> None:
    """The tenant's VEE rule: a reading counts for the hourly slot it is nearest to, up to half an hour away.
    Push meters report every minute, not on the hour; the default (15 min) would fail most of their readings
    as clock errors, and a failed reading bills nothing."""
    with httpx.Client(headers=auth_headers(tenant=TENANT), timeout=30) as http:
        _send(http, "POST", f"{stack.api('vee')}/v1/rules", {
            "rule_id": "push-meters-any-minute", "effective_from": since.isoformat(),
            "parameters": {"clock_flag_limit": 1800}, "published_by": "faults"})


def recharge(stack: Stack, accounts: list[str]) -> None:
    """A counter payment for each account, enough to restore it."""
    with httpx.Client(headers=auth_headers(tenant=TENANT), timeout=30) as http:
        for account_id in accounts:
            _send(http, "POST", f"{stack.api('billing')}/v1/payments", {
                "account_id": account_id, "channel": "cash", "provider_transaction_id": f"TOPUP-{account_id}",
                "amount": "50.00", "currency": "CNY"})


def registers_at(meter: SimMeter, at: datetime) -> list[dict[str, str]]:
    """The registers the meter showed at ``at``, as its own reply would carry them."""
    if isinstance(meter, ElectricityMeter):
        energy = meter.energy(at)
        values = [("total", energy.total), *((f"T{i}", v) for i, v in enumerate(energy.tariffs, start=1))]
        return [{"register": name, "value": str(value), "unit": "kWh"} for name, value in values]
    assert isinstance(meter, Cjt188Meter)
    return [{"register": r.register, "value": str(r.value), "unit": r.unit.value}
            for r in cjt188_reading(meter, at).registers]


def backfill(stack: Stack, fleet: Fleet, at: datetime) -> set[str]:
    """Each meter's reading of the slot before the live one, through ingest's API; the accepted event ids."""
    items = [{"meter_id": m.meter_id, "utility": KINDS[m.spec.kind].utility.value, "measured_at": at.isoformat(),
              "registers": registers_at(m, at)} for m in fleet.meters.values()]
    with httpx.Client(headers=auth_headers(tenant=TENANT), timeout=60) as http:
        answer = http.post(f"{stack.api('ingest')}/v1/readings", json={"readings": items})
    assert answer.status_code == 200, answer.text[:500]
    receipt = answer.json()
    assert receipt["accepted"] == len(items), receipt
    return {item["event_id"] for item in receipt["items"]}


# ---------------------------------------------------------------------------------------------
# Faults


class Faults:
    """Injects the faults one after the other and notes each: when, and how long until work flowed again."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.log: list[dict[str, Any]] = []
        self.gateway_killed: list[datetime] = []

    def _recover(self, entry: dict[str, Any], names: tuple[str, ...], stages: tuple[str, ...]) -> None:
        """Wait until the processes answer ready and the stages they feed move again; note how long it took."""
        started = time.monotonic()
        entry["not_ready_after"] = self.stack.wait_ready(names, timeout_s=150)
        moving = wait_for_progress(self.stack, stages, at_least=10, timeout_s=150)
        entry["work_flowing_after_s"] = None if moving is None else round(time.monotonic() - started, 1)
        self.log.append(entry)
        phase(entry["fault"], entry)

    def kill(self, *names: str, stages: tuple[str, ...] = ()) -> None:
        killed_at = datetime.now(UTC)
        entry = {"fault": f"kill -9 {' + '.join(names)}, started again", "at": killed_at.isoformat()}
        self.stack.kill(*names)
        if "ingest-worker" in names:
            self.gateway_killed.append(killed_at)
        time.sleep(2.0)
        self.stack.start(*names)
        self._recover(entry, names, stages)

    def broker_outage(self) -> None:
        entry = {"fault": f"Kafka broker stopped (SIGTERM, controlled shutdown) for {OUTAGE_S:.0f} s, started again",
                 "at": datetime.now(UTC).isoformat()}
        self.stack.broker.stop()
        time.sleep(OUTAGE_S)
        self.stack.broker.start()
        self._recover(entry, PROCESSES, PIPELINE)

    def database_outage(self) -> None:
        entry = {"fault": f"PostgreSQL stopped (fast shutdown) for {OUTAGE_S:.0f} s, started again",
                 "at": datetime.now(UTC).isoformat()}
        self.stack.postgres.stop()
        time.sleep(OUTAGE_S)
        self.stack.postgres.start()
        self._recover(entry, PROCESSES, PIPELINE)


STARTED = time.monotonic()


def phase(what: str, detail: Any = "") -> None:
    """A line in the test's output: how far the sequence got, and when."""
    print(f"[faults {time.monotonic() - STARTED:6.0f} s] {what} {detail}", flush=True)


@pytest.mark.timeout(1500)
def test_killed_workers_and_broker_and_database_outages_lose_no_reading_and_duplicate_no_effect(
        stack: Stack) -> None:
    live_slot = next_slot(datetime.now(UTC), stack.zone)
    fleet = Fleet.build(fleet_spec(stack.zone))
    runner = FleetThread(fleet)
    faults = Faults(stack)
    try:
        phase("platform up", f"(zone {stack.zone}, live slot {live_slot:%H:%M} UTC)")
        runner.run(fleet.register(stack.api("ingest"), deadline_s=120))
        tolerate_push_clocks(stack, since=live_slot - timedelta(hours=2))
        accounts = open_accounts(stack, fleet)
        backfilled = backfill(stack, fleet, live_slot - timedelta(hours=1))
        runner.run(fleet.start("127.0.0.1", stack.gateway_port))
        steady = wait_for_progress(stack, PIPELINE, at_least=40, timeout_s=240)
        assert steady is not None, stack.log_tail("vee-worker")
        phase("steady traffic")

        faults.kill("vee-worker", stages=("validated",))
        faults.kill("billing-worker", stages=("rated",))
        recharge(stack, [a for a, kind in accounts.items() if kind == "dry"])  # restores for commands to send
        faults.kill("commands-worker")
        faults.kill("notify-worker")
        faults.kill("ingest-worker", "ingest-api", stages=("accepted",))
        faults.broker_outage()
        faults.database_outage()

        settled = runner.run(runner.settled(120), timeout_s=150)
        runner.run(fleet.stop())
        drained = wait_until_drained(stack, timeout_s=300)
        phase("traffic stopped, drained" if drained else "traffic stopped, NOT drained", drained)
        found = reconcile(stack, fleet, backfilled, accounts, faults.gateway_killed)
    finally:
        runner.close()
    figures = publish_figures(stack, fleet, faults, live_slot, settled, drained is not None, found)

    not_recovered = [f for f in faults.log if f["not_ready_after"] or f["work_flowing_after_s"] is None]
    assert not not_recovered, f"processes that did not recover: {not_recovered}"
    assert settled, "a DTU was not back online with its backlog sent when the traffic stopped"
    assert drained is not None, "the platform did not drain after the traffic stopped"
    assert figures["readings"]["lost"] == 0, figures["readings"]
    assert figures["effects_duplicated"] == 0, figures["duplicates"]
    assert figures["balances"]["mismatched"] == [], figures["balances"]


def publish_figures(stack: Stack, fleet: Fleet, faults: Faults, live_slot: datetime, settled: bool, drained: bool,
                    found: dict[str, Any]) -> dict[str, Any]:
    """The figures of the run, written to FIGURES and printed: the summary first, then the detail."""
    readings = found["readings"]
    figures = {"summary": {"faults_injected": len(faults.log), "readings_sent": readings["sent"],
                           "readings_received": readings["received"], "readings_validated": readings["validated"],
                           "readings_lost": readings["lost"], "effects_duplicated": found["effects_duplicated"]},
               "tenant": TENANT, "zone": stack.zone, "live_slot": live_slot.isoformat(), "logs": str(stack.folder),
               "fleet": {"meters": len(fleet.meters), "dtus": len(fleet.dtus), "push_interval_s": PUSH_INTERVAL_S},
               "faults_injected": faults.log, "fleet_settled": settled, "drained": drained, **found}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nfault test figures: {FIGURES}\n{json.dumps(figures, indent=2, default=str)}")
    return figures


# ---------------------------------------------------------------------------------------------
# Reconciliation


def reconcile(stack: Stack, fleet: Fleet, backfilled: set[str], accounts: dict[str, str],
              gateway_killed: list[datetime]) -> dict[str, Any]:
    """Compare the simulator, the topics and every service's tables; the figures and problems found."""
    topics = run_async(read_topics(stack.bootstrap, TOPICS, TENANT))
    events = {name: list({e.event_id: e for e in found}.values()) for name, found in topics.items()}
    rows = run_async(_tables(stack))
    duplicates: dict[str, list[Any]] = {}
    readings = _readings(fleet, backfilled, events, rows, duplicates, gateway_killed)
    # An event a consumer set aside is an effect not applied; nothing in this run should be refused.
    dead = [{"topic": t, "event_type": e.event_type, "event_id": str(e.event_id)} for t in DEAD_LETTERS
            for e in events[t]]
    if dead:
        readings["lost"] += len(dead)
        readings["lost_detail"]["dead_lettered"] = dead[:20]
    balances = _balances(events["amiflow.billing.ledger"], rows, duplicates)
    commands = _commands(fleet, events["amiflow.commands.lifecycle"], rows, duplicates)
    notifications = _notifications(stack.mailbox, events["amiflow.notify.deliveries"], rows, duplicates)
    balance_events = Counter(e.event_type for e in events["amiflow.billing.balance"])
    return {"readings": readings, "balances": balances, "balance_events": dict(balance_events),
            "commands": commands, "notifications": notifications,
            "accounts": dict(Counter(accounts.values())),
            "effects_duplicated": sum(len(found) for found in duplicates.values()),
            "duplicates": {name: found[:20] for name, found in duplicates.items() if found}}


async def _tables(stack: Stack) -> dict[str, list[Any]]:
    db = stack.database
    return {
        "accepted": await query(db("ingest"), "SELECT meter_id, measured_at, event_id FROM accepted_readings "
                                              "WHERE tenant_id = $1", TENANT),
        "vee_inbox": await query(db("vee"), "SELECT event_id FROM inbox WHERE consumer = 'vee.validation'"),
        "points": await query(db("vee"), "SELECT series_id, measured_at, version, event_id FROM series_points "
                                         "WHERE tenant_id = $1", TENANT),
        "billing_inbox": await query(db("billing"), "SELECT event_id FROM inbox WHERE consumer = 'billing.readings'"),
        "ledger": await query(db("billing"), "SELECT event_id, account_id, effect FROM ledger_entries "
                                             "WHERE tenant_id = $1", TENANT),
        "balances": await query(db("billing"), "SELECT account_id, balance FROM account_balances WHERE tenant_id = $1",
                                TENANT),
        "rated": await query(db("billing"), "SELECT reading_event_id FROM rated_readings WHERE tenant_id = $1", TENANT),
        "commands": await query(db("commands"), "SELECT command_id, device_id, state FROM commands "
                                                "WHERE tenant_id = $1", TENANT),
        "notifications": await query(db("notify"), "SELECT notification_id, dedupe_key, recipient_id, channel, status "
                                                   "FROM notifications WHERE tenant_id = $1", TENANT),
    }


def _repeated(keys: list[Any]) -> list[Any]:
    return [key for key, n in Counter(keys).items() if n > 1]


def _readings(fleet: Fleet, backfilled: set[str], events: dict[str, list[Envelope[Any]]],
              rows: dict[str, list[Any]], duplicates: dict[str, list[Any]],
              gateway_killed: list[datetime]) -> dict[str, Any]:
    deliveries = fleet.ledger.distinct_readings()
    accepted_ids = {r["event_id"] for r in rows["accepted"]}
    missing = sent_not_accepted(deliveries, [r for r in rows["accepted"] if r["event_id"] not in backfilled])
    in_flight = [d for d in missing if any(abs(d.delivered_at - k) <= IN_FLIGHT for k in gateway_killed)]
    never_accepted = [{"meter_id": d.meter_id, "measured_at": d.measured_at, "delivered_at": d.delivered_at,
                       "backlogged": d.backlogged} for d in missing if d not in in_flight]
    received = {str(e.event_id) for e in events["amiflow.ingest.readings"]}
    vee_applied = {r["event_id"] for r in rows["vee_inbox"]}
    firsts = [e for e in events["amiflow.vee.readings"] if e.event_type == "ReadingValidated"]
    corrections = [e for e in events["amiflow.vee.readings"] if e.event_type == "ReadingCorrected"]
    duplicates["ReadingValidated for one slot"] = _repeated([(e.payload.meter_id, e.payload.measured_at)
                                                             for e in firsts])
    duplicates["series point versions"] = _repeated([(r["series_id"], r["measured_at"], r["version"])
                                                     for r in rows["points"]])
    duplicates["rated reading"] = _repeated([r["reading_event_id"] for r in rows["rated"]])
    first_points = {r["event_id"] for r in rows["points"] if r["version"] == 1}
    later_points = {r["event_id"] for r in rows["points"] if r["version"] > 1}
    billing_applied = {r["event_id"] for r in rows["billing_inbox"]}
    published = {str(e.event_id) for e in [*firsts, *corrections]}
    lost = {
        "sent_never_accepted": never_accepted,
        "accepted_not_on_topic": sorted(accepted_ids - received),
        "on_topic_not_accepted": sorted(received - accepted_ids),
        "accepted_not_validated": sorted(accepted_ids - vee_applied),
        "points_not_published": sorted((first_points | later_points) - published),
        "published_not_recorded": sorted(published - (first_points | later_points)),
        "published_not_billed": sorted(published - billing_applied),
    }
    return {"sent": len(deliveries) + len(backfilled), "sent_by_meters": len(deliveries),
            "sent_through_api": len(backfilled), "received": len(accepted_ids),
            "in_flight_when_the_gateway_was_killed": [{"meter_id": d.meter_id, "delivered_at": d.delivered_at}
                                                      for d in in_flight],
            "on_topic": len(received), "validated": len(accepted_ids & vee_applied),
            "points_published": len(firsts), "corrections_published": len(corrections),
            "billing_applied": len(published & billing_applied), "lost": sum(len(v) for v in lost.values()),
            "lost_detail": {k: v[:20] for k, v in lost.items() if v}}


def sent_not_accepted(deliveries: list[Delivery], accepted: list[Any]) -> list[Delivery]:
    """The meters' replies that ingest has no record of. A CJ/T 188 reading carries the meter clock, which
    ingest keys it by; a DL/T 645 one does not, and ingest stamps it with the moment it arrived, so it is
    matched to an unclaimed record of its meter from within a few seconds of its sending."""
    keys = {(r["meter_id"], r["measured_at"]) for r in accepted}
    arrivals: dict[str, list[datetime]] = defaultdict(list)
    for meter_id, at in sorted(keys, key=lambda k: k[1]):
        arrivals[meter_id].append(at)
    missing = []
    for delivery in sorted(deliveries, key=lambda d: d.delivered_at):
        if delivery.measured_at is not None:
            if (delivery.meter_id, delivery.measured_at.astimezone(UTC).replace(microsecond=0)) not in keys:
                missing.append(delivery)
            continue
        near = [at for at in arrivals[delivery.meter_id] if abs(at - delivery.delivered_at) <= ARRIVAL]
        if near:
            arrivals[delivery.meter_id].remove(near[0])
        else:
            missing.append(delivery)
    return missing


def _balances(ledger: list[Envelope[Any]], rows: dict[str, list[Any]],
              duplicates: dict[str, list[Any]]) -> dict[str, Any]:
    folded: dict[str, Decimal] = defaultdict(Decimal)
    entries = [e for e in ledger if e.event_type in CREDITS + DEBITS]
    for event in entries:
        sign = 1 if event.event_type in CREDITS else -1
        folded[event.payload.account_id] += sign * event.payload.amount
    table_fold: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows["ledger"]:
        table_fold[row["account_id"]] += Decimal(row["effect"])
    stored = {r["account_id"]: Decimal(r["balance"]) for r in rows["balances"]}
    mismatched = [{"account_id": a, "balance": stored.get(a), "topic_fold": folded.get(a, Decimal(0)),
                   "table_fold": table_fold.get(a, Decimal(0))}
                  for a in sorted(set(stored) | set(folded) | set(table_fold))
                  if not stored.get(a) == folded.get(a, Decimal(0)) == table_fold.get(a, Decimal(0))]
    on_topic = {str(e.event_id) for e in entries}
    in_table = {r["event_id"] for r in rows["ledger"]}
    charges = [e for e in entries if e.event_type == "ChargeApplied" and e.payload.reading_event_id is not None]
    duplicates["charge per reading"] = _repeated([e.payload.reading_event_id for e in charges])
    duplicates["ledger entry id"] = _repeated([r["event_id"] for r in rows["ledger"]])
    settled = [e for e in ledger if e.event_type == "DailySettled"]
    duplicates["DailySettled per account-day"] = _repeated([(e.payload.account_id, e.payload.settlement_date)
                                                           for e in settled])
    return {"accounts": len(stored), "ledger_entries": len(in_table), "charges": len(charges),
            "adjustments": sum(e.event_type == "AdjustmentPosted" for e in entries), "daily_settlements": len(settled),
            "entries_only_on_topic": sorted(on_topic - in_table)[:20],
            "entries_only_in_table": sorted(in_table - on_topic)[:20], "mismatched": mismatched[:20]}


def _commands(fleet: Fleet, lifecycle: list[Envelope[Any]], rows: dict[str, list[Any]],
              duplicates: dict[str, list[Any]]) -> dict[str, Any]:
    def of(*types: str) -> list[Envelope[Any]]:
        return [e for e in lifecycle if e.event_type in types]

    requested, dispatched = of("CommandRequested"), of("CommandDispatched")
    issued = of("ValveCommandIssued", "RelayCommandIssued")
    duplicates["CommandRequested per command"] = _repeated([e.payload.command_id for e in requested])
    duplicates["command per cause"] = _repeated([(e.causation_id, e.payload.device_id, e.payload.kind)
                                                 for e in requested if e.causation_id is not None])
    duplicates["CommandDispatched per attempt"] = _repeated([(e.payload.command_id, e.payload.attempt)
                                                            for e in dispatched])
    sends = Counter(e.payload.command_id for e in dispatched)
    duplicates["issued beyond dispatches"] = [c for c, n in Counter(e.payload.command_id for e in issued).items()
                                              if n > sends[c]]
    per_device = Counter(e.payload.device_id for e in issued)
    obeyed = Counter(d.meter_id for d in fleet.ledger if d.kind in (ReplyKind.VALVE, ReplyKind.RELAY))
    duplicates["commands a meter obeyed beyond those sent"] = [m for m, n in obeyed.items() if n > per_device[m]]
    states = Counter(r["state"] for r in rows["commands"])
    return {"requested": len(requested), "issued": len(issued), "kept": len(rows["commands"]),
            "obeyed_by_meters": sum(obeyed.values()), "states": dict(states),
            "requested_not_kept": len({str(e.payload.command_id) for e in requested}
                                      - {r["command_id"] for r in rows["commands"]})}


def _notifications(mailbox: Path, sent: list[Envelope[Any]], rows: dict[str, list[Any]],
                   duplicates: dict[str, list[Any]]) -> dict[str, Any]:
    duplicates["notification per dedupe key"] = _repeated([(r["dedupe_key"], r["recipient_id"], r["channel"])
                                                          for r in rows["notifications"]])
    duplicates["NotificationSent per notification"] = _repeated([e.payload.notification_id for e in sent])
    message_ids = [message_from_bytes(p.read_bytes())["Message-ID"] for p in sorted(mailbox.glob("*.eml"))]
    repeats = _repeated(message_ids)
    statuses = Counter(r["status"] for r in rows["notifications"])
    return {"planned": len(rows["notifications"]), "statuses": dict(statuses),
            "sent_events": len(sent), "mails": len(message_ids), "mails_repeated_with_same_message_id": len(repeats)}
