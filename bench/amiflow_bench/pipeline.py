"""Readings through ingest → VEE → billing's balance, and a depleted balance through to a command.

The platform runs as `amiflow up` starts it (ingest API, VEE, billing and commands workers) on the
bench's broker and durable PostgreSQL. A fleet of water meters is registered through the registry
import, one prepaid account per meter is opened and linked through billing's API. Readings go in as
an integrator sends them (POST /v1/readings, batches), and come out as ChargeApplied on the ledger
topic: the balance has moved. Time is compressed — meters are read every hour of event time,
as fast as the run needs, from the moment the accounts opened onwards (ingest's future-skew limit is
raised for the run).

Figures:
- capacity: readings offered far faster than the pipeline takes them; the completion rate in the
  middle of the burst, per stage (accepted by ingest, validated by VEE, charged by billing);
- sustainable: open loop at a fixed rate for a steady window; sustainable when the backlog
  (offered - charged) does not grow. Starts at 90 % of capacity and steps down;
- latency: reading (its scheduled send time, so queueing in the generator counts) → ChargeApplied
  (the record's timestamp, when billing's relay published it), open loop at fractions of the
  maximum rate;
- depletion: BalanceDepleted → Valve/RelayCommandIssued, both record timestamps;
- upload: every meter's concentrator uploads the hours it stored at once (store-and-forward, as in the
  morning peak), a meter's readings back to back; the drain rate per stage, as for capacity;
- CPU microseconds per reading of every process, over the sustained window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import client_options
from amiflow_runtime.testing import auth_headers
from amiflow_schemas.topics import topic_named
from ingest.simulator.registration import GATEWAY_COLUMNS, METER_COLUMNS, csv_text, import_fleet

from amiflow_bench.environment import BenchEnv, Platform, platform
from amiflow_bench.profiles import Profiler

log = logging.getLogger("amiflow.bench.pipeline")

TENANT = "demo"
SERVICES = ("ingest", "vee", "billing", "commands")
SLOT = timedelta(hours=1)  # VEE's default read interval: one published point per meter-hour
LANES = 8  # concurrent posts; a meter always goes through the same lane, so its readings stay in order
# The open-loop generator sends a batch per lane every tick, as head-end systems and concentrators upload:
# in batches, not reading by reading. At 0.1 s (80 small posts a second) ingest's per-request work — token check,
# two audit records, one transaction each — took the CPU the 2 cores needed for VEE and billing, and the
# "sustained" rate measured the generator's request rate instead of the pipeline (2026-11-22 run).
TICK_S = 0.5
TOPICS = {
    "received": topic_named("amiflow.ingest.readings").name,
    "validated": topic_named("amiflow.vee.readings").name,
    "ledger": topic_named("amiflow.billing.ledger").name,
    "balance": topic_named("amiflow.billing.balance").name,
    "commands": topic_named("amiflow.commands.lifecycle").name,
}


@dataclass(frozen=True)
class Scale:
    meters: int
    depletion_accounts: int
    burst: int  # readings offered at once for the capacity figure (the flood stops at burst_s if sooner)
    burst_s: float
    window_s: float
    latency_window_s: float
    latency_loads: tuple[float, ...]  # fractions of the maximum rate
    upload_hours: int  # hours of readings each meter's concentrator uploads at once for the upload figure


SCALES = {
    # Sized for what the pipeline does today (tens to hundreds of readings a second on 2 cores); opening
    # the accounts through billing's audited API is itself ~10 a second. Grow it as the pipeline grows.
    "full": Scale(meters=1000, depletion_accounts=100, burst=6_000, burst_s=45.0, window_s=40.0, latency_window_s=25.0,
                  latency_loads=(0.25, 0.5, 0.75), upload_hours=24),
    "quick": Scale(meters=200, depletion_accounts=20, burst=1_600, burst_s=8.0, window_s=8.0, latency_window_s=5.0,
                   latency_loads=(0.5,), upload_hours=12),
}


def measure(env: BenchEnv, scale: str, profile_dir: Path | None = None) -> dict[str, Any]:
    size = SCALES[scale]
    extra = {
        # Time is compressed: event time runs ahead of the wall clock by up to the whole run's readings.
        "INGEST_MAX_FUTURE_SKEW_S": str(90 * 86400),
        # No DTU is connected: the gateway's polls and the estimation of silent meters would only add noise.
        "VEE_ESTIMATION_INTERVAL_S": "86400",
    }
    with platform(env, SERVICES, "pipeline", extra) as running:
        return asyncio.run(Run(env, running, size, profile_dir).all())


@dataclass
class Tracker:
    """Consumes the pipeline's topics from the end and records when each stage's events appeared."""

    bootstrap: str
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seen: set[bytes] = field(default_factory=set)
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # record timestamps, s
    charged_at: dict[tuple[str, float], float] = field(default_factory=dict)  # (meter, period end) → timestamp
    depleted_at: dict[str, float] = field(default_factory=dict)
    commanded_at: dict[str, float] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap)
        self._consumer = AIOKafkaConsumer(**client_options(settings), client_id="bench-tracker",
                                          enable_auto_commit=False, isolation_level="read_committed",
                                          max_poll_records=5000)
        await self._consumer.start()
        partitions = [TopicPartition(t, p) for t in TOPICS.values() for p in range(topic_named(t).partitions)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        names = {topic: name for name, topic in TOPICS.items()}
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for partition, records in batches.items():
                name = names[partition.topic]
                for record in records:
                    headers = dict(record.headers or ())
                    event_id = headers.get("event_id", b"")
                    if event_id in self.seen:
                        continue  # a relay may publish a row twice; consumers drop it by id, so do we
                    self.seen.add(event_id)
                    self._record(name, headers.get("event_type", b"").decode(), record)

    def _record(self, name: str, event_type: str, record: Any) -> None:
        at = record.timestamp / 1000
        if name in ("received", "validated"):
            self.counts[name] += 1
            self.arrivals[name].append(at)
        elif name == "ledger" and event_type == "ChargeApplied":
            payload = json.loads(record.value)["payload"]
            if payload.get("reading_event_id"):
                self.counts["charged"] += 1
                self.arrivals["charged"].append(at)
                # Keyed by the instant, not the text: the event says "…Z" where isoformat() says "+00:00".
                end = datetime.fromisoformat(payload["period_end"]).timestamp()
                self.charged_at[(payload["meter_id"], end)] = at
        elif name == "balance" and event_type == "BalanceDepleted":
            self.depleted_at.setdefault(json.loads(record.value)["payload"]["account_id"], at)
        elif name == "commands" and event_type in ("ValveCommandIssued", "RelayCommandIssued"):
            payload = json.loads(record.value)["payload"]
            if payload.get("account_id"):
                self.commanded_at.setdefault(payload["account_id"], at)

    def rate(self, name: str, since: float, until: float) -> float:
        times = self.arrivals[name]
        return sum(since <= t < until for t in times) / (until - since)


class Fleet:
    """Meters, their accounts, and the next reading of each (event time moves forward slot by slot)."""

    def __init__(self, meters: int, depletion: int, start: datetime) -> None:
        self.meters = [f"BENCH-WM-{n:06d}" for n in range(1, meters + 1)]
        self.depleting = [f"BENCH-DP-{n:06d}" for n in range(1, depletion + 1)]
        self.start = start
        self.next_slot = dict.fromkeys(self.meters, 0)
        self._cursor = [0] * LANES

    def gateways(self) -> list[str]:
        return [f"BENCH-DTU-{n:04d}" for n in range(1, math.ceil((len(self.meters) + len(self.depleting)) / 100) + 1)]

    def csv(self) -> tuple[str, str]:
        dtus = self.gateways()
        gateways = [{"gateway_id": d, "kind": "dtu", "registration_id": d, "model": "bench", "firmware": "1"}
                    for d in dtus]
        meters = [{"meter_id": m, "utility": "water", "profile": "cjt188-water-2004",
                   "bus_address": f"{n:014d}", "unit": "m3", "multiplier": "1", "schedule": "push",
                   "gateway_id": dtus[n // 100]} for n, m in enumerate(self.meters + self.depleting)]
        return csv_text(GATEWAY_COLUMNS, gateways), csv_text(METER_COLUMNS, meters)

    def reading(self, meter_id: str, slot: int, step: Decimal = Decimal("0.020")) -> dict[str, Any]:
        return {"meter_id": meter_id, "utility": "water", "measured_at": (self.start + slot * SLOT).isoformat(),
                "registers": [{"register": "total", "value": str(Decimal(100) + step * slot), "unit": "m3"}]}

    def take(self, lane: int, count: int) -> list[tuple[str, int]]:
        """The lane's next `count` readings: its meters round robin, each at its next slot."""
        meters = self.meters[lane::LANES]
        taken = []
        for _ in range(count):
            meter = meters[self._cursor[lane] % len(meters)]
            self._cursor[lane] += 1
            taken.append((meter, self.next_slot[meter]))
            self.next_slot[meter] += 1
        return taken

    def stored(self, lane: int, hours: int) -> list[tuple[str, int]]:
        """What the lane's concentrators upload after `hours` without a link: each meter's next `hours`
        slots, a meter's readings back to back (ingest keys them by meter: one partition, in order)."""
        taken = []
        for meter in self.meters[lane::LANES]:
            taken += [(meter, self.next_slot[meter] + h) for h in range(hours)]
            self.next_slot[meter] += hours
        return taken


@dataclass
class Run:
    env: BenchEnv
    running: Platform
    size: Scale
    profile_dir: Path | None
    tracker: Tracker = field(init=False)
    fleet: Fleet = field(init=False)
    http: httpx.AsyncClient = field(init=False)
    offered_at: dict[tuple[str, float], float] = field(default_factory=dict)
    offered: int = 0

    async def all(self) -> dict[str, Any]:
        self.tracker = Tracker(self.env.bootstrap)
        opened = datetime.now(UTC)
        first = (opened + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        self.fleet = Fleet(self.size.meters, self.size.depletion_accounts, first)
        async with httpx.AsyncClient(timeout=120.0, headers=auth_headers(TENANT)) as self.http:
            await self.tracker.start()
            try:
                setup = await self._set_up()
                capacity = await self._capacity()
                sustained = await self._sustainable(capacity["charged_per_s"])
                # Fractions of the maximum rate (the drain rate under a backlog), as the goal is stated.
                maximum = max(capacity["charged_per_s"], sustained["rate_per_s"])
                latency = [await self._latency(max(1, round(maximum * load)), load)
                           for load in self.size.latency_loads]
                depletion = await self._depletion()
                upload = await self._upload()
            finally:
                await self.tracker.stop()
        return {"meters": self.size.meters, "accounts": self.size.meters + self.size.depletion_accounts,
                "setup": setup, "capacity": capacity, "sustainable": sustained, "latency": latency,
                "depletion": depletion, "upload": upload}

    # --- set-up --------------------------------------------------------------------------------------------

    async def _set_up(self) -> dict[str, Any]:
        started = time.monotonic()
        gateways, meters = self.fleet.csv()
        await import_fleet(self.running.api["ingest"], TENANT, gateways, meters, client=self.http)
        billing = self.running.api["billing"]
        await self._post(f"{billing}/v1/tariffs", {
            "tariff_id": "bench-water", "version_id": "bench-water-1", "utility": "water", "unit": "m3",
            "tier_period": "calendar_year", "effective_from": "2020-01-01T00:00:00+08:00",
            "tiers": [{"up_to": "180", "unit_price": "5.00"}, {"up_to": "260", "unit_price": "7.00"},
                      {"up_to": None, "unit_price": "9.00"}]})
        accounts = ([(f"BA-{m[-6:]}", m) for m in self.fleet.meters]
                    + [(f"BD-{m[-6:]}", m) for m in self.fleet.depleting])
        lanes = asyncio.Queue[tuple[str, str]]()
        for pair in accounts:
            lanes.put_nowait(pair)

        async def opener() -> None:
            while not lanes.empty():
                account_id, meter_id = lanes.get_nowait()
                await self._post(f"{billing}/v1/accounts", {"account_id": account_id, "customer_id": account_id,
                                                            "customer_kind": "household"})
                await self._post(f"{billing}/v1/accounts/{account_id}/meters", {
                    "meter_id": meter_id, "utility": "water", "tariff_id": "bench-water", "reason": "operator"})

        await asyncio.gather(*(opener() for _ in range(8)))
        lines = [{"account_id": a, "amount": "100000.00" if a.startswith("BA") else "1.00"} for a, _ in accounts]
        for n in range(0, len(lines), 1000):
            await self._post(f"{billing}/v1/recharges/batch", {"batch_id": f"BENCH-{n}", "lines": lines[n:n + 1000]})
        opened_s = time.monotonic() - started
        # Slot 0 of every meter (a first reading charges nothing), then slot 1: every account charged once
        # proves the registry reached VEE and the links are in place before anything is timed.
        everyone = self.fleet.meters + self.fleet.depleting
        await self._send_now([(m, 0) for m in everyone])
        self.fleet.next_slot.update(dict.fromkeys(self.fleet.meters, 1))
        await self._send_now([(m, 1) for m in self.fleet.meters])
        self.fleet.next_slot.update(dict.fromkeys(self.fleet.meters, 2))
        await self._until(lambda: self.tracker.counts["charged"] >= len(self.fleet.meters), 600, "warm-up charges")
        return {"accounts_opened_s": round(opened_s, 1), "ready_s": round(time.monotonic() - started, 1)}

    async def _post(self, url: str, body: Any) -> None:
        answer = await self.http.post(url, json=body)
        if answer.status_code not in (200, 201, 202, 409):
            raise RuntimeError(f"POST {url}: {answer.status_code} {answer.text[:500]}")

    async def _send_now(self, readings: list[tuple[str, int]]) -> None:
        for n in range(0, len(readings), 1000):
            await self._post_readings(readings[n:n + 1000], time.time())

    async def _post_readings(self, readings: list[tuple[str, int]], scheduled: float) -> None:
        body = {"readings": [self.fleet.reading(m, s) for m, s in readings]}
        for m, s in readings:
            self.offered_at[(m, (self.fleet.start + s * SLOT).timestamp())] = scheduled
        answer = await self.http.post(f"{self.running.api['ingest']}/v1/readings", json=body)
        if answer.status_code != 200 or answer.json()["accepted"] != len(readings):
            raise RuntimeError(f"ingest refused readings: {answer.status_code} {answer.text[:500]}")
        self.offered += len(readings)

    async def _until(self, done: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done in {timeout_s:.0f} s ({dict(self.tracker.counts)})")
            await asyncio.sleep(0.2)

    async def _drain(self) -> None:
        target = self.offered - (len(self.fleet.meters) + len(self.fleet.depleting))  # slot 0 charges nothing
        await self._until(lambda: self.tracker.counts["charged"] >= target, 1800, "drain")

    # --- load ----------------------------------------------------------------------------------------------

    async def _offer(self, rate: float, seconds: float) -> float:
        """Open loop: every tick each lane posts its share of `rate`; returns the wall time it started."""
        per_lane = rate * TICK_S / LANES  # readings per lane and tick, a fraction at low rates
        began = time.time()
        ticks = int(seconds / TICK_S)

        async def lane(number: int) -> None:
            for tick in range(ticks):
                due = math.floor((tick + 1) * per_lane) - math.floor(tick * per_lane)
                if not due:
                    continue
                scheduled = began + tick * TICK_S
                delay = scheduled - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._post_readings(self.fleet.take(number, due), scheduled)

        await asyncio.gather(*(lane(n) for n in range(LANES)))
        return began

    async def _flood(self, seconds: float, count: int) -> float:
        """Closed loop, as fast as ingest accepts: batches of up to 1,000 on every lane, `count` in all."""
        began = time.time()
        share = count // LANES

        async def lane(number: int) -> None:
            left = share
            while left > 0 and time.time() - began < seconds:
                await self._post_readings(self.fleet.take(number, min(1000, left)), time.time())
                left -= min(1000, left)

        await asyncio.gather(*(lane(n) for n in range(LANES)))
        return began

    async def _capacity(self) -> dict[str, Any]:
        profiler = Profiler(self.running.processes(), self.profile_dir) if self.profile_dir else None
        before = self.offered
        began = time.time()
        await self._flood(self.size.burst_s, self.size.burst)
        ended = time.time()
        accepted = (self.offered - before) / (ended - began)
        if profiler:  # the backlog keeps every stage busy while it drains: sample them now
            profiler.start(seconds=15.0 if self.size.burst > 2000 else 5.0)
        await self._drain()
        drained = time.time()
        profile = profiler.finish() if profiler else {}
        # Between the end of the flood and the end of the drain every stage had work queued: their rates
        # there are the pipeline's capacity (VEE's finishes first; billing's is the pipeline's).
        vee_done = max(self.tracker.arrivals["validated"], default=drained)
        return {"offered": self.offered - before, "ingest_accepted_per_s": round(accepted),
                "validated_per_s": round(self.tracker.rate("validated", ended, vee_done)) if vee_done > ended else None,
                "charged_per_s": round(self.tracker.rate("charged", ended, drained)),
                "drain_s": round(drained - ended, 1), "profile": profile}

    async def _upload(self) -> dict[str, Any]:
        """Every meter's stored hours at once, in posts of up to 1,000 per lane: the drain rate per stage.

        Unlike the capacity flood (round robin over meters, so a consumed batch holds about one reading per
        meter), a batch here holds runs of one meter's readings, which VEE merges with one derivation."""
        hours = self.size.upload_hours
        before = self.offered
        began = time.time()

        async def lane(number: int) -> None:
            readings = self.fleet.stored(number, hours)
            for n in range(0, len(readings), 1000):
                await self._post_readings(readings[n:n + 1000], time.time())

        await asyncio.gather(*(lane(n) for n in range(LANES)))
        ended = time.time()
        await self._drain()
        drained = time.time()
        vee_done = max(self.tracker.arrivals["validated"], default=drained)
        return {"hours_per_meter": hours, "offered": self.offered - before,
                "ingest_accepted_per_s": round((self.offered - before) / (ended - began)),
                "validated_per_s": round(self.tracker.rate("validated", began, vee_done)) if vee_done > began else None,
                "charged_per_s": round(self.tracker.rate("charged", began, drained)),
                "drain_s": round(drained - began, 1)}

    async def _sustainable(self, capacity: float) -> dict[str, Any]:
        rate = max(50.0, capacity * 0.9)
        tries = []
        for attempt in range(4):
            processes = {**self.running.processes(), **self.env.processes(), "bench": psutil.Process()}
            cpu_before = _cpu(processes)
            charged_before = self.tracker.counts["charged"]
            # The last window is sampled (the earlier ones' verdicts stay unperturbed): where the time goes
            # when readings come at a steady rate, each consumed batch holding a few of them.
            profiler = Profiler(self.running.processes(), self.profile_dir / "window") \
                if self.profile_dir and attempt == 3 else None
            if profiler:
                profiler.start(seconds=self.size.window_s)
            began = await self._offer(rate, self.size.window_s)
            elapsed = time.time() - began
            cpu_after = _cpu(processes)
            done = self.tracker.counts["charged"] - charged_before
            backlog_third = self._backlog_at(began + self.size.window_s / 3)
            backlog_end = self._backlog_at(began + self.size.window_s - 1)
            await self._drain()
            growth = backlog_end - backlog_third
            held = growth <= max(rate * 1.0, 0.02 * rate * self.size.window_s)  # under a second's worth
            # Each stage's rate over the window: where a backlog builds when the pipeline does not keep up.
            window_end = began + self.size.window_s
            stages = {stage: round(self.tracker.rate(stage, began, window_end), 1)
                      for stage in ("received", "validated", "charged")}
            tries.append({"rate_per_s": round(rate), "backlog_growth": growth, "sustained": held,
                          "stage_rates_per_s": stages, **({"profile": profiler.finish()} if profiler else {})})
            if held:
                readings = rate * elapsed
                per_process = {name: round((cpu_after[name] - cpu_before[name]) / readings * 1e6, 1)
                               for name in cpu_before if name in cpu_after}
                platform_total = sum(v for k, v in per_process.items() if k != "bench")
                return {"rate_per_s": round(rate), "window_s": self.size.window_s, "charged_in_window": done,
                        "cpu_us_per_reading": per_process,  # "bench" is the load generator, not the platform
                        "cpu_us_per_reading_total": round(platform_total, 1), "tries": tries}
            rate *= 0.8
        return {"rate_per_s": 0, "tries": tries, "cpu_us_per_reading": {}}

    def _backlog_at(self, at: float) -> int:
        offered = sum(1 for t in self.offered_at.values() if t <= at)
        charged = sum(1 for t in self.tracker.arrivals["charged"] if t <= at)
        return offered - charged

    async def _latency(self, rate: int, load: float) -> dict[str, Any]:
        began = await self._offer(rate, self.size.latency_window_s)
        await self._drain()
        samples = sorted(self.tracker.charged_at[key] - at for key, at in self.offered_at.items()
                         if at >= began and key in self.tracker.charged_at)
        return {"load": load, "rate_per_s": rate, "samples": len(samples), **_percentiles(samples)}

    async def _depletion(self) -> dict[str, Any]:
        """One reading per small account that takes its balance below zero, 20 a second."""
        depleting = self.fleet.depleting
        began = time.time()
        for n, meter in enumerate(depleting):
            scheduled = began + n / 20
            delay = scheduled - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"readings": [self.fleet.reading(meter, 1, step=Decimal("1.000"))]}
            answer = await self.http.post(f"{self.running.api['ingest']}/v1/readings", json=body)
            answer.raise_for_status()
        accounts = [f"BD-{m[-6:]}" for m in depleting]
        await self._until(lambda: all(a in self.tracker.commanded_at for a in accounts), 300, "cut-off commands")
        samples = sorted(self.tracker.commanded_at[a] - self.tracker.depleted_at[a] for a in accounts
                         if a in self.tracker.depleted_at)
        return {"accounts": len(accounts), "samples": len(samples), **_percentiles(samples)}


def _percentiles(samples: list[float]) -> dict[str, float | None]:
    def at(q: float) -> float | None:
        if not samples:
            return None
        return round(samples[min(len(samples) - 1, math.ceil(q * len(samples)) - 1)] * 1000, 1)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0)}


def _cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds (user + system) of each process and its children (PostgreSQL's backends)."""
    used = {}
    for name, process in processes.items():
        try:
            total = sum(process.cpu_times()[:2])
            for child in process.children(recursive=True):
                try:
                    total += sum(child.cpu_times()[:2])
                except psutil.Error:
                    pass
            used[name] = total
        except psutil.Error:
            pass
    return used
