"""Incremental derivation: a new read re-derives only the local days it can reach, and the outcome is the one a
whole derivation gives — the state, every point published, every bucket and alarm, step by step."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from vee.core import engine
from vee.core.context import InactivePeriod
from vee.core.derive import Derivation, derive_series
from vee.core.engine import Outcome, apply_readings, prune
from vee.core.model import Check, MeterSeries, RawRead
from vee.core.rules import RuleSet

from .conftest import HOUR, Meter, make_meter, raw

T0 = datetime(2026, 3, 20, tzinfo=UTC)  # Berlin leaves winter time on 2026-03-29: a 23-hour local day


def _stream(seed: int, zone: str, interval: timedelta, count: int,
            wild: float) -> Iterator[tuple[datetime, Decimal, datetime]]:
    """(measured at, register, received at): mostly in order, with drops, local shuffles, reads delayed by
    days, and a share ``wild`` of spikes (which can leave the chain failing every read after them) and of
    reads that ran back."""
    rng = random.Random(seed)
    value, reads = Decimal(rng.randint(0, 1000)), []
    for i in range(count):
        value += Decimal(rng.randint(0, 300)) / 1000
        roll, shown = rng.random(), value
        if roll < wild:
            shown = value * 2 + 10
        elif roll < 2 * wild:
            shown = value - Decimal(rng.randint(1, 50)) / 100
        # A daily meter reads at local midnight (wall-clock arithmetic in its zone), others on the UTC grid.
        slot = (datetime(2026, 3, 20, tzinfo=ZoneInfo(zone)) + i * interval).astimezone(UTC) \
            if interval == timedelta(days=1) else T0 + i * interval
        reads.append((slot + timedelta(seconds=rng.choice([0, 0, 0, 10, 400])), shown))
    order = list(range(count))
    for k in range(0, count - 8, 8):
        if rng.random() < 0.3:
            window = order[k:k + 8]
            rng.shuffle(window)
            order[k:k + 8] = window
    delayed = [order.pop(rng.randrange(len(order) - 30)) for _ in range(6)]
    for n, index in enumerate(delayed):
        order.insert(len(order) * (n + 2) // 8, index)
    now = T0
    for index in order:
        if rng.random() < 0.08:
            continue  # never arrives: a gap to estimate
        at, shown = reads[index]
        now = max(now, at) + timedelta(minutes=3)
        yield at, shown, now


def _whole(state: MeterSeries, context: Any, rules: RuleSet, changed_from: datetime | None = None) -> Derivation:
    return derive_series(state, context, rules)


def _both(meter: Meter, reads: list[RawRead], now: datetime, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Apply reads incrementally and, from the same state, with a whole derivation; they must agree."""
    incremental = apply_readings(meter.state, meter.context, meter.rules, reads, now)
    with monkeypatch.context() as patched:
        patched.setattr(engine, "derive_series", _whole)
        whole = apply_readings(meter.state, meter.context, meter.rules, reads, now)
    assert incremental == whole, f"incremental derivation differs after reads at {[r.measured_at for r in reads]}"
    meter.state = incremental.state
    return incremental


@pytest.mark.parametrize(("seed", "zone", "interval", "wild"), [
    (1, "UTC", HOUR, 0.03), (2, "Europe/Berlin", HOUR, 0.005), (3, "Asia/Kathmandu", timedelta(minutes=15), 0.005),
    (4, "Europe/Berlin", timedelta(days=1), 0.0), (5, "America/New_York", HOUR, 0.03), (6, "UTC", HOUR, 0.005)])
def test_a_reading_derived_from_where_it_can_reach_gives_what_a_whole_derivation_gives(
        seed: int, zone: str, interval: timedelta, wild: float, monkeypatch: pytest.MonkeyPatch) -> None:
    meter = make_meter(interval, zone=zone, q3_m3_per_h=Decimal("2.5"))
    derived: list[Derivation] = []

    def watched(state: MeterSeries, context: Any, rules: RuleSet, changed_from: datetime | None = None) -> Derivation:
        derived.append(derive_series(state, context, rules, changed_from))
        return derived[-1]

    monkeypatch.setattr(engine, "derive_series", watched)
    rng = random.Random(seed)
    batch: list[RawRead] = []
    for at, shown, now in _stream(seed, zone, interval, max(120, min(288, 5 * timedelta(days=1) // interval)), wild):
        batch.append(raw(at, shown, received_at=now))
        if rng.random() < 0.7:  # sometimes a few readings come in one batch
            _both(meter, batch, now, monkeypatch)
            batch = []
    assert [d for d in derived if d.since is not None], "no reading was derived from where it reaches"


def test_a_reading_in_order_re_derives_one_to_two_local_days(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = make_meter(HOUR, zone="Europe/Berlin")
    derived: list[Derivation] = []

    def watched(state: MeterSeries, context: Any, rules: RuleSet, changed_from: datetime | None = None) -> Derivation:
        derived.append(derive_series(state, context, rules, changed_from))
        return derived[-1]

    monkeypatch.setattr(engine, "derive_series", watched)
    for i in range(24 * 10):
        meter.read(T0 + i * HOUR, Decimal(100) + Decimal("0.25") * i + Decimal(i % 5) / 10)
    later = derived[48:]  # from the third day on, there is a day before the reading's to start from
    assert all(d.since is not None for d in later)
    assert max(len(d.points) for d in later) <= 48 and min(len(d.points) for d in later) >= 23
    assert len(meter.state.published) == 240


def test_a_changed_context_derives_the_whole_series_again() -> None:
    meter = make_meter(HOUR)
    for i in range(72):
        meter.read(T0 + i * HOUR, Decimal(100) + Decimal("0.5") * i)
    assert meter.state.derived_with == engine.fingerprint(meter.context, meter.rules)
    # The registry learns that the service was off on the first day: the next reading re-derives that day too.
    meter.context = meter.context.model_copy(update={"inactive": (InactivePeriod(start=T0, end=T0 + 12 * HOUR),)})
    outcome = meter.read(T0 + 72 * HOUR, Decimal(136))
    failed = [f.point.at for f in outcome.points if Check.INACTIVE_USAGE in f.point.checks]
    assert failed == [T0 + k * HOUR for k in range(1, 13)]  # every hour whose interval overlaps the period
    assert outcome.state.derived_with == engine.fingerprint(meter.context, meter.rules)


def test_pruning_asks_for_a_whole_derivation_next() -> None:
    meter = make_meter(HOUR)
    for i in range(72):
        meter.read(T0 + i * HOUR, Decimal(100) + Decimal("0.5") * i)
    pruned = prune(meter.state, meter.context, meter.rules, T0 + 48 * HOUR)
    assert meter.state.derived_with is not None and pruned.derived_with is None


def test_a_late_read_re_estimates_its_gap_even_when_the_gap_began_days_earlier(
        monkeypatch: pytest.MonkeyPatch) -> None:
    meter = make_meter(HOUR, zone="Europe/Berlin")
    for i in [*range(0, 10), *range(80, 90)]:  # three days unread in between, estimated from both ends
        _both(meter, [raw(T0 + i * HOUR, Decimal(100) + Decimal("0.5") * i)], T0 + i * HOUR + HOUR, monkeypatch)
    late = _both(meter, [raw(T0 + 40 * HOUR, Decimal(140))], T0 + 91 * HOUR, monkeypatch)
    corrected = sorted(f.point.at for f in late.points)
    # The whole gap on both sides of the late read, and the read closing it (its consumption starts at 79).
    assert corrected == [T0 + k * HOUR for k in range(10, 81)]


def test_a_new_revision_of_the_derivation_derives_every_series_whole_once(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = make_meter(HOUR)
    for i in range(72):
        meter.read(T0 + i * HOUR, Decimal(100) + Decimal("0.5") * i)
    monkeypatch.setattr(engine, "DERIVATION_REVISION", engine.DERIVATION_REVISION + 1)
    derived: list[Derivation] = []

    def watched(state: MeterSeries, context: Any, rules: RuleSet, changed_from: datetime | None = None) -> Derivation:
        derived.append(derive_series(state, context, rules, changed_from))
        return derived[-1]

    monkeypatch.setattr(engine, "derive_series", watched)
    meter.read(T0 + 72 * HOUR, Decimal(136))
    meter.read(T0 + 73 * HOUR, Decimal("136.5"))
    assert [d.since is None for d in derived] == [True, False]
