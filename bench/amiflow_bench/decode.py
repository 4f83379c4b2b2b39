"""Decode + validate and encode of one event, per hot-path event type, against plain JSON parsing.

Every hop of the pipeline turns a Kafka record into a typed, validated envelope (`decode_event`) and
its output back into bytes (`encode_event`); the issue's goal is at most 4 µs per event per hop.
The events are built as the services build them (ingest, VEE, billing, commands), encoded once,
then timed timeit-style: the best of several repeats of a tight loop, so the figure is the cost
of the code, not of whatever else the shared machine was doing. `json.loads` on the same bytes
(and orjson when it happens to be installed) is the floor: what parsing alone costs.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pydantic_core
from amiflow_schemas import Envelope, decode_event, encode_event, new_envelope
from amiflow_schemas.events.billing import AccountMeter, BalanceDepleted, ChargeApplied, ChargeKind, ChargeLine
from amiflow_schemas.events.commands import (
    CommandReason,
    RelayAction,
    RelayCommandIssued,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.events.readings import ReadingReceived, ReadingValidated, RegisterValue, ValidationStatus
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import ReadingSource, Unit, Utility

from amiflow_bench.environment import BenchEnv, bench_env

GOAL_US = 4.0
# Wall clock: timeit's best of a few long repeats. CPU time: the same number of calls in many short
# repeats, so that some of them run without another process on the core's other hyperthread.
SCALES = {"full": {"loops": 20_000, "repeats": 5, "cpu_loops": 2_000, "cpu_repeats": 50},
          "quick": {"loops": 2_000, "repeats": 3, "cpu_loops": 400, "cpu_repeats": 15}}
PROFILE_DECODES = 20_000
# What one reading costs in codec work on its way to a balance: ingest encodes it, VEE decodes it and
# encodes its validation, billing decodes that and encodes the charge.
READING_TO_CHARGE = (("encode", "ReadingReceived (1 register)"), ("decode", "ReadingReceived (1 register)"),
                     ("encode", "ReadingValidated"), ("decode", "ReadingValidated"), ("encode", "ChargeApplied"))
_AT = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
_TARIFF = "water-residential@2026-01-01"


def _wrap(payload: EventPayload, key: str, producer: str, cause: UUID | None = None) -> Envelope[Any]:
    event_id = uuid4()
    return new_envelope(payload, event_id=event_id, tenant_id="demo", key=key, occurred_at=_AT,
                        recorded_at=_AT + timedelta(milliseconds=40), producer=producer,
                        correlation_id=cause or event_id, causation_id=cause)


def _register(name: str, value: str, unit: Unit) -> RegisterValue:
    return RegisterValue(register=name, value=Decimal(value), unit=unit)


_WATER, _POWER, _ACCOUNT = "WM-000012345678", "EM-123456789012", "ACC-0001"


def _readings() -> tuple[ReadingReceived, ReadingReceived]:
    water = ReadingReceived(  # ingest's DTU uplink: one CJ/T 188 water register and its raw frame
        meter_id=_WATER, utility=Utility.WATER, measured_at=_AT,
        registers=(_register("total", "102.40", Unit.M3),), source=ReadingSource.DTU,
        gateway_id="DTU-861234567890123",
        frame_hex="6810785634120000008116901f00002401000000000000000000000000000000000000ff16",
        received_at=_AT + timedelta(seconds=3))
    power = ReadingReceived(  # a DL/T 645 electricity meter: total and two time-of-use registers
        meter_id=_POWER, utility=Utility.ELECTRICITY, measured_at=_AT,
        registers=(_register("total", "5012.37", Unit.KWH), _register("T1", "3120.05", Unit.KWH),
                   _register("T2", "1892.32", Unit.KWH)),
        source=ReadingSource.DTU, gateway_id="DTU-861234567890123",
        frame_hex="68121110090807685811043433b3353312013b34359933cc3b3412358867453733c416",
        received_at=_AT + timedelta(seconds=3))
    return water, power


def _validated(received: ReadingReceived, source_event_id: UUID) -> ReadingValidated:
    # VEE: an actual reading with its consumption since the previous one, 15 minutes earlier
    return ReadingValidated(
        meter_id=received.meter_id, utility=received.utility, measured_at=_AT, registers=received.registers,
        consumption=Decimal("0.42"), consumption_unit=Unit.M3, previous_measured_at=_AT - timedelta(minutes=15),
        status=ValidationStatus.ACTUAL, estimation_method=None, source_event_id=source_event_id)


def _charge(reading_event_id: UUID) -> ChargeApplied:
    # billing: the validated reading rated across a tier boundary, so two charge lines
    def line(tier: int, quantity: str, unit_price: str, cost: str) -> ChargeLine:
        return ChargeLine(tariff_version_id=_TARIFF, tier=tier, register=None, quantity=Decimal(quantity),
                          unit_price=Decimal(unit_price), cost=Decimal(cost))

    return ChargeApplied(
        account_id=_ACCOUNT, kind=ChargeKind.CONSUMPTION, meter_id=_WATER, utility=Utility.WATER,
        reading_event_id=reading_event_id, period_start=_AT - timedelta(minutes=15), period_end=_AT,
        quantity=Decimal("0.42"), quantity_unit=Unit.M3,
        lines=(line(1, "0.12", "5.00", "0.6000"), line(2, "0.30", "7.00", "2.1000")),
        amount=Decimal("2.70"), currency="CNY", tier_period_cost=Decimal("900.7000"))


def _depleted() -> BalanceDepleted:
    return BalanceDepleted(
        account_id=_ACCOUNT, balance=Decimal("-0.50"), credit_limit=Decimal("0"), currency="CNY", depleted_at=_AT,
        meters=(AccountMeter(meter_id=_WATER, utility=Utility.WATER),
                AccountMeter(meter_id=_POWER, utility=Utility.ELECTRICITY)))


def _cut_offs() -> tuple[RelayCommandIssued, ValveCommandIssued]:
    # commands: the balance-depleted cut-off of each meter on the account
    issued: dict[str, Any] = dict(reason=CommandReason.BALANCE_DEPLETED, requested_by="commands",
                                  account_id=_ACCOUNT, issued_at=_AT, not_before=None,
                                  expires_at=_AT + timedelta(days=1))
    return (RelayCommandIssued(command_id=uuid4(), device_id=_POWER, action=RelayAction.TRIP, **issued),
            ValveCommandIssued(command_id=uuid4(), device_id=_WATER, action=ValveAction.CLOSE, **issued))


def hot_path_events() -> dict[str, Envelope[Any]]:
    """One envelope per hot-path event, shaped and chained (causation ids) as the producing service emits it."""
    water, power = _readings()
    reading = _wrap(water, _WATER, "ingest")
    validated = _wrap(_validated(water, reading.event_id), _WATER, "vee", reading.event_id)
    depleted = _wrap(_depleted(), _ACCOUNT, "billing", validated.event_id)
    relay, valve = _cut_offs()
    return {
        "ReadingReceived (1 register)": reading,
        "ReadingReceived (3 registers)": _wrap(power, _POWER, "ingest"),
        "ReadingValidated": validated,
        "ChargeApplied": _wrap(_charge(validated.event_id), _ACCOUNT, "billing", validated.event_id),
        "BalanceDepleted": depleted,
        "RelayCommandIssued": _wrap(relay, _POWER, "commands", depleted.event_id),
        "ValveCommandIssued": _wrap(valve, _WATER, "commands", depleted.event_id),
    }


def best_ns_per_call(call: Callable[[Any], object], argument: Any, loops: int, repeats: int,
                     clock: Callable[[], int] = time.perf_counter_ns) -> float:
    """The fastest of ``repeats`` timings of ``loops`` calls, in nanoseconds per call (timeit's rule)."""
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        for _ in range(loops):
            call(argument)
        best = min(best, (clock() - started) / loops)
    return best


def _floors() -> dict[str, Callable[[bytes], object]]:
    floors: dict[str, Callable[[bytes], object]] = {"json.loads": json.loads,
                                                     "pydantic_core.from_json": pydantic_core.from_json}
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:  # not a dependency; shown when present, never installed for the benchmark
        return floors
    floors["orjson.loads"] = orjson.loads
    return floors


def _time_event(envelope: Envelope[Any], scale: dict[str, int]) -> dict[str, Any]:
    loops, repeats = scale["loops"], scale["repeats"]
    raw = encode_event(envelope)
    decoded = decode_event(raw)
    if decoded != envelope:
        raise AssertionError(f"{envelope.event_type} does not survive encode → decode")
    us = {"decode": best_ns_per_call(decode_event, raw, loops, repeats) / 1000,
          "encode": best_ns_per_call(encode_event, envelope, loops, repeats) / 1000}
    # The thread's CPU time leaves out the time other processes held the core: on a shared machine it
    # stays close to the quiet-machine figure when the wall-clock one does not.
    cpu = (scale["cpu_loops"], scale["cpu_repeats"], time.thread_time_ns)
    cpu_us = {"decode": best_ns_per_call(decode_event, raw, *cpu) / 1000,
              "encode": best_ns_per_call(encode_event, envelope, *cpu) / 1000}
    floors = {name: best_ns_per_call(parse, raw, loops, repeats) / 1000 for name, parse in _floors().items()}
    return {
        "event_type": envelope.event_type,
        "bytes": len(raw),
        "decode_us": round(us["decode"], 3),
        "encode_us": round(us["encode"], 3),
        "decode_cpu_us": round(cpu_us["decode"], 3),
        "encode_cpu_us": round(cpu_us["encode"], 3),
        "floor_us": {name: round(value, 3) for name, value in floors.items()},
        "decode_over_json_loads": round(us["decode"] / floors["json.loads"], 2),
        "decode_goal_met": us["decode"] <= GOAL_US,
    }


def where_the_time_goes(raws: list[bytes], decodes: int = PROFILE_DECODES, top: int = 8) -> list[str]:
    """cProfile of decoding the hot-path mix: the Python functions that run per decode, by own time."""
    profiler = cProfile.Profile()
    rounds = max(1, decodes // len(raws))
    profiler.enable()
    for _ in range(rounds):
        for raw in raws:
            decode_event(raw)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, function), (_, calls, own_s, total_s, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((own_s, f"{Path(path).name}:{line}({function})", calls, total_s))
    rows.sort(reverse=True)
    n = rounds * len(raws)
    return [f"{name}: {calls / n:.2f} calls/decode, own {own * 1e6 / n:.3f} µs, cumulative {cum * 1e6 / n:.3f} µs"
            " (profiler-inflated)" for own, name, calls, cum in rows[:top]]


def measure(env: BenchEnv | None, scale: str) -> dict[str, Any]:
    """Decode and encode µs per event per hot-path type, the JSON-parse floor, and the ≤ 4 µs goal."""
    del env  # pure CPU work: no broker or database involved
    events = hot_path_events()
    load_before = os.getloadavg()[0]
    per_type = {name: _time_event(envelope, SCALES[scale]) for name, envelope in events.items()}
    decodes = [row["decode_us"] for row in per_type.values()]
    cpu_worst = max(row["decode_cpu_us"] for row in per_type.values())
    return {
        "scale": scale,
        "loops_per_repeat": SCALES[scale]["loops"],
        "repeats": SCALES[scale]["repeats"],
        "cpu_loops_per_repeat": SCALES[scale]["cpu_loops"],
        "cpu_repeats": SCALES[scale]["cpu_repeats"],
        "timing": "best of repeats, one process, µs per event: *_us wall clock (perf_counter_ns), "
                  "*_cpu_us the thread's CPU time (thread_time_ns)",
        # Other work on the machine inflates even the best repeat; the load says how much to trust it.
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cpu_count": os.cpu_count(),
        "orjson_installed": "orjson.loads" in _floors(),
        "events": per_type,
        "decode_us_mean": round(sum(decodes) / len(decodes), 3),
        "decode_us_worst": max(decodes),
        "decode_cpu_us_worst": cpu_worst,
        "encode_us_mean": round(sum(row["encode_us"] for row in per_type.values()) / len(per_type), 3),
        "reading_to_charge_codec_us": round(sum(per_type[name][f"{step}_us"] for step, name in READING_TO_CHARGE), 3),
        "reading_to_charge_codec_cpu_us": round(
            sum(per_type[name][f"{step}_cpu_us"] for step, name in READING_TO_CHARGE), 3),
        "reading_to_charge_codec_steps": [f"{step} {name}" for step, name in READING_TO_CHARGE],
        "goal": f"decode + validate per event per hop <= {GOAL_US:g} µs, for every hot-path event type",
        "goal_us": GOAL_US,
        "goal_met": max(decodes) <= GOAL_US,
        "goal_met_on_cpu_time": cpu_worst <= GOAL_US,
        "profile": where_the_time_goes([encode_event(envelope) for envelope in events.values()],
                                       decodes=PROFILE_DECODES if scale == "full" else 2_000),
    }


def main() -> None:
    """Run the decode benchmark alone and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="quick")
    parser.add_argument("--with-env", action="store_true",
                        help="start the broker and PostgreSQL as make bench does (not needed: pure CPU)")
    args = parser.parse_args()
    if args.with_env:
        with tempfile.TemporaryDirectory(prefix="amiflow-bench-decode-") as folder, bench_env(Path(folder)) as env:
            print(json.dumps(measure(env, args.scale), indent=2, ensure_ascii=False))
    else:
        print(json.dumps(measure(None, args.scale), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
