"""VEE's core as an oracle: representative and random scenarios, one digest line per step — to prove a change to
the core leaves every output identical (points, Decimal exponents included, state, buckets, alarms).

    git worktree add /tmp/vee-base HEAD            # the core before your change
    PYTHONPATH=/tmp/vee-base/services/vee .venv/bin/python bench/scripts/vee_oracle.py > /tmp/base.txt
    .venv/bin/python bench/scripts/vee_oracle.py > /tmp/new.txt
    diff /tmp/base.txt /tmp/new.txt && echo identical
    .venv/bin/python bench/scripts/vee_oracle.py all random2:54   # the full text of one step, to see a difference

`python bench/scripts/vee_oracle.py hourly,swap` runs some scenarios only. Scenarios: hourly UTC with spike,
reverse flow, misread, clock-shifted and conflicting reads, gaps then late reads, edits, prune and the silence
timer; Berlin hourly with an offset across both DST changes; Berlin daily; a meter swap; rollover with a
multiplier; 15-minute reads in Kathmandu; rule versions with scopes, burst, leak, an inactive period, a holiday
and a load profile; five random seeds of shuffled and delayed reads, edits, estimates and prune on several grids.
Written for the 2026-11-22 core speed-ups (2,453 steps identical). VEE_ORACLE_WHOLE=1 derives every series
whole, to hold incremental derivation (derive_series' changed_from) to the whole one in the same revision.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "vee" / "tests" / "unit"))
from amiflow_schemas.primitives import Unit, Utility
from vee.core import engine
from vee.core.context import InactivePeriod, LoadProfile, MeterDevice
from vee.core.engine import prune
from vee.core.model import ReadFlag
from vee.core.rules import ObjectGroups, RuleSet, RuleVersion, VeeParameters

from conftest import HOUR, make_meter

if os.environ.get("VEE_ORACLE_WHOLE"):  # derive every series whole, as before incremental derivation
    _derive = engine.derive_series
    engine.derive_series = lambda state, context, rules, changed_from=None: _derive(state, context, rules)

FULL = sys.argv[2] if len(sys.argv) > 2 else None  # "scenario:step" to print the full text of one step
ONLY = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "all" else None
_IDS = UUID("11111111-0000-5000-8000-000000000000")


class Recorder:
    def __init__(self, name, m):
        self.name, self.m, self.step = name, m, 0

    def emit(self, outcome, label):
        state = outcome.state.model_dump_json(exclude={"derived_with"})  # a digest of inputs, not an output
        text = f"{label}\n{dataclasses.replace(outcome, state=None)!r}\n{state}\n" + "\n".join(
            repr(b) for b in outcome.buckets)
        key = f"{self.name}:{self.step}"
        if FULL == key:
            print(text)
        elif FULL is None:
            print(key, label, hashlib.sha256(text.encode()).hexdigest()[:16], len(outcome.points),
                  len(outcome.buckets), len(outcome.alarms), flush=True)
        self.step += 1

    def read(self, at, value, now=None, **extra):
        self.emit(self.m.read(at, value, now, **extra), f"read {at} {value}")

    def batch(self, reads, now=None):
        self.emit(self.m.batch(reads, now), f"batch {len(reads)}")

    def estimate(self, until, now):
        self.emit(self.m.estimate(until, now), f"estimate {until}")

    def edit(self, at, value, edited_at):
        self.emit(self.m.edit(at, value, edited_at), f"edit {at} {value}")

    def prune(self, before):
        self.m.state = prune(self.m.state, self.m.context, self.m.rules, before)
        self.emit(engine.Outcome(self.m.state), f"prune {before}")


def scenario_hourly_utc(r):
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    value = Decimal(100)
    late = []
    for i in range(260):
        at = t0 + i * HOUR
        value += Decimal("0.05") + Decimal(i % 7) / 100
        v = value
        if i == 100:
            v = value + 9  # spike
        if i == 150:
            v = value - Decimal("0.3")  # reverse flow
            value = v
        if i == 170:
            v = value - 50  # misread
        if i % 37 == 5 or 200 <= i < 210:
            late.append((at, v))
            continue
        if i == 120:
            r.read(at + timedelta(minutes=7), v)  # clock adjusted
            continue
        if i == 130:
            r.read(at + timedelta(minutes=20), v)  # clock invalid
            continue
        r.read(at, v)
        if i == 140:
            r.read(at, v)  # redelivery
            r.read(at + timedelta(seconds=40), v + 1, salt="conflict")  # conflicting read
        if i == 212:
            for a, lv in reversed(late):
                r.read(a, lv, now=at + HOUR)
            late.clear()
        if i == 90:
            r.edit(t0 + 50 * HOUR, "104", at)
            r.edit(t0 + 60 * HOUR, None, at)
            r.edit(t0 + 50 * HOUR, "104.5", at + timedelta(minutes=1))
        if i == 230:
            r.prune(t0 + 150 * HOUR)
    r.estimate(t0 + 300 * HOUR, t0 + 270 * HOUR)
    r.estimate(t0 + 400 * HOUR, t0 + 380 * HOUR)
    r.read(t0 + 390 * HOUR, value + 20)


def scenario_berlin_dst(r):
    value = Decimal(5000)
    for start, n in ((datetime(2026, 3, 27, 22, tzinfo=UTC), 120), (datetime(2026, 10, 23, 22, tzinfo=UTC), 140)):
        skipped = []
        for i in range(n):
            at = start + i * HOUR + timedelta(minutes=23)
            value += Decimal("0.125")
            if 40 <= i < 47 or i == 80:
                skipped.append((at, value))
                continue
            r.read(at, value)
            if i == 60:
                r.batch(skipped)
                skipped = []
        r.batch(skipped)
        r.estimate(start + (n + 30) * HOUR, start + (n + 140) * HOUR)


def scenario_daily_berlin(r):
    value = Decimal(100)
    start = datetime(2026, 3, 1, 5, tzinfo=UTC)
    gaps = []
    for d in range(80):
        at = start + timedelta(days=d)
        value += Decimal("1.5") + Decimal(d % 5) / 10
        if d in (20, 21, 22, 50):
            gaps.append((at, value))
            continue
        if d == 60:
            r.read(at, value - 1)  # small drop
            continue
        r.read(at, value)
        if d == 30:
            r.edit(start + timedelta(days=10), "120", at)
        if d == 55:
            for a, v in gaps:
                r.read(a, v, now=at)
            gaps.clear()
        if d == 65:
            r.prune(start + timedelta(days=40))
    r.estimate(start + timedelta(days=100), start + timedelta(days=95))


def scenario_swap(r):
    t0 = datetime(2026, 2, 2, tzinfo=UTC)
    value = Decimal(8000)
    for i in range(130):
        at = t0 + i * HOUR
        if i < 100:
            value += Decimal("0.2")
            if i == 70:
                continue
            r.read(at, value, meter_id="M-1")
        else:
            r.read(at, Decimal(5) + Decimal("0.3") * (i - 100), meter_id="M-2")
        if i == 110:
            r.read(t0 + 70 * HOUR, Decimal("8014.2"), meter_id="M-1")  # late old-meter read
            r.read(t0 + 111 * HOUR, Decimal(1), meter_id="M-9")  # unknown device: rejected
    r.estimate(t0 + 200 * HOUR, t0 + 260 * HOUR)


def scenario_rollover(r):
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    value = Decimal("85.00")
    for i in range(150):
        value = (value + Decimal("0.17") + Decimal(i % 3) / 100) % 100
        if i == 75:
            r.read(t0 + i * HOUR, value, flags=(ReadFlag.REVERSE_FLOW,))
            continue
        if i == 90:
            r.read(t0 + i * HOUR, value, flags=(ReadFlag.POWER_FAILURE,), multiplier=Decimal(3))
            continue
        r.read(t0 + i * HOUR, value)


def scenario_kathmandu_15min(r):
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    value = Decimal(10)
    q = timedelta(minutes=15)
    pending = []
    for i in range(300):
        value += Decimal("0.001") * (i % 11)
        at = t0 + i * q
        if i % 29 == 3:
            pending.append((at, value))
            continue
        r.read(at, value)
        if i % 50 == 49 and pending:
            r.batch(pending, now=at)
            pending = []
    r.estimate(t0 + 310 * q, t0 + 320 * q + timedelta(days=6))


def _rules():
    return RuleSet(tenant_id="demo", versions=(
        RuleVersion(rule_id="base@1970", effective_from=datetime(1970, 1, 1, tzinfo=UTC),
                    parameters=VeeParameters(spike_ratio=Decimal(3))),
        RuleVersion(rule_id="spike@2", effective_from=datetime(2026, 1, 8, tzinfo=UTC),
                    parameters=VeeParameters(spike_ratio=Decimal("1.5"), leak_hours=12)),
        RuleVersion(rule_id="res@3", effective_from=datetime(2026, 1, 10, 5, tzinfo=UTC),
                    scope=ObjectGroups(customer_type="res"),
                    parameters=VeeParameters(replacement_min_change=Decimal("0.01"),
                                             replacement_min_share=Decimal("0.1"), protect_manual_edits=False,
                                             estimation_wait=HOUR)),
        RuleVersion(rule_id="other@4", effective_from=datetime(2026, 1, 9, tzinfo=UTC),
                    scope=ObjectGroups(customer_type="biz"), parameters=VeeParameters()),
        RuleVersion(rule_id="late@5", effective_from=datetime(2026, 1, 12, tzinfo=UTC),
                    parameters=VeeParameters(burst_q3_share=Decimal("0.05")))))


def scenario_rules_and_alarms(r):
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    value = Decimal(0)
    held = []
    for i in range(240):
        at = t0 + i * HOUR
        value += Decimal("0.02") if i < 120 else Decimal("0.4") if i < 130 else Decimal(0)
        if i in (30, 31, 32, 33, 34, 35):
            held.append((at, value))
            continue
        r.read(at, value)
        if i == 40:
            r.batch(held, now=at)
        if i == 150:
            r.edit(t0 + 140 * HOUR, "5", at)
    r.estimate(t0 + 300 * HOUR, t0 + 250 * HOUR)


def random_scenario(seed, zone, interval):
    def run(r):
        rng = random.Random(seed)
        t0 = datetime(2026, 3, 20, tzinfo=UTC)
        value = Decimal(rng.randint(0, 1000))
        reads = []
        for i in range(220):
            value += Decimal(rng.randint(0, 300)) / 1000
            v = value
            roll = rng.random()
            if roll < 0.02:
                v = value * 2 + 10  # spike / misread
            elif roll < 0.04:
                v = value - Decimal(rng.randint(1, 50)) / 100
            jitter = timedelta(seconds=rng.choice([0, 0, 0, 10, 400, 1000]))
            slot = (datetime(2026, 3, 20, tzinfo=ZoneInfo(zone)) + i * interval).astimezone(UTC) \
                if interval == timedelta(days=1) else t0 + i * interval
            reads.append((slot + jitter, v))
        order = list(range(len(reads)))
        for k in range(0, len(order) - 8, 8):  # local shuffles and some long-delayed reads
            if rng.random() < 0.4:
                window = order[k:k + 8]
                rng.shuffle(window)
                order[k:k + 8] = window
        delayed = [order.pop(rng.randrange(len(order) - 20)) for _ in range(8)]
        order[len(order) // 2:len(order) // 2] = delayed
        now = t0
        for n, idx in enumerate(order):
            at, v = reads[idx]
            now = max(now, at) + timedelta(minutes=3)
            if rng.random() < 0.1 and n + 3 < len(order):
                continue  # dropped forever
            r.read(at, v, now=now)
            if rng.random() < 0.03:
                slot = reads[rng.randrange(len(reads))][0]
                r.edit(slot, rng.choice([None, str(v)]), now)
            if rng.random() < 0.02:
                r.estimate(now + timedelta(days=2), now + timedelta(days=6))
            if n == 180:
                r.prune(t0 + 60 * interval)
    return run, dict(zone=zone, interval=interval)


def main():
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    scenarios = {
        "utc": (scenario_hourly_utc, make_meter(HOUR, q3_m3_per_h=Decimal("2.5"))),
        "berlin": (scenario_berlin_dst, make_meter(HOUR, zone="Europe/Berlin", read_offset=timedelta(minutes=23),
                                                   utility=Utility.ELECTRICITY, unit=Unit.KWH)),
        "daily": (scenario_daily_berlin, make_meter(timedelta(days=1), zone="Europe/Berlin", read_time=time(6))),
        "swap": (scenario_swap, make_meter(HOUR, devices=(
            MeterDevice(meter_id="M-1", multiplier=Decimal(1), installed_at=datetime(2026, 2, 1, tzinfo=UTC),
                        installation_reading=Decimal(7990), removed_at=datetime(2026, 2, 2, tzinfo=UTC) + 99 * HOUR
                        + timedelta(minutes=30), removal_reading=Decimal("8020.1")),
            MeterDevice(meter_id="M-2", multiplier=Decimal(2), installed_at=datetime(2026, 2, 2, tzinfo=UTC)
                        + 99 * HOUR + timedelta(minutes=40), installation_reading=Decimal(4))))),
        "rollover": (scenario_rollover, make_meter(HOUR, multiplier="10", dial_count=4, resolution="0.01")),
        "ktm15": (scenario_kathmandu_15min, make_meter(timedelta(minutes=15), zone="Asia/Kathmandu")),
        "rules": (scenario_rules_and_alarms, make_meter(
            HOUR, zone="America/New_York", rules=_rules(), q3_m3_per_h=Decimal("1.6"),
            groups=ObjectGroups(customer_type="res"), holidays=(date(2026, 1, 6),),
            inactive=(InactivePeriod(start=t0 + 60 * HOUR, end=t0 + 66 * HOUR),),
            profile=LoadProfile(name="res", hourly_weights=tuple(Decimal(1 + h % 5) for h in range(24)),
                                daily_weights=tuple(Decimal(d + 1) for d in range(7))))),
    }
    for seed, zone, interval in ((1, "UTC", HOUR), (2, "Europe/Berlin", HOUR), (3, "Europe/Berlin", timedelta(days=1)),
                                 (4, "Australia/Lord_Howe", timedelta(minutes=30)), (5, "UTC", timedelta(hours=3))):
        run, kw = random_scenario(seed, zone, interval)
        scenarios[f"random{seed}"] = (run, make_meter(kw["interval"], zone=kw["zone"], dial_count=5,
                                                      q3_m3_per_h=Decimal(1)))
    for name, (run, meter) in scenarios.items():
        if ONLY and name not in ONLY.split(","):
            continue
        run(Recorder(name, meter))


if __name__ == "__main__":
    main()
