"""VEE's pure core: CPU per reading against the number of reads a series keeps (no database, no Kafka).

    .venv/bin/python bench/scripts/vee_history_cost.py

Feeds one hourly water meter in order and, at a few history lengths, times 20 more readings one by one, then
the same 20 merged as one batch (`apply_readings`: what the worker does with a batch's readings of one series).
Also the kept state's size and the CPU to parse and write it, which the worker pays once per series per batch.
The kept window in production: the estimation timer settles slots older than 40 days (series_app.SETTLE_AFTER)
and keeps max(ADU window 30 d, like-day lookback 4 weeks) of history before that (engine.prune) — ~1,680 hourly
reads and ~960 published points per series once a meter has been read for ten weeks. (This script does not
prune: its series publish a point per read, so its state at 1,680 reads is ~1.3 times the production one.)
Uses the unit tests' meter builder (services/vee/tests/unit/conftest.py) for a default context and rule set.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "vee" / "tests" / "unit"))

from amiflow_schemas.events.readings import RegisterValue
from amiflow_schemas.primitives import Unit
from vee.core.engine import apply_reading, apply_readings
from vee.core.model import MeterSeries, RawRead

from conftest import HOUR, make_meter

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MARKS = (10, 50, 200, 700, 1500, 1680)  # 1,680: the steady state (prune at now - 40 d keeps 30 d before that)


def raw(i: int) -> RawRead:
    at = T0 + i * HOUR
    return RawRead(source_event_id=f"00000000-0000-4000-8000-{i:012d}", meter_id="M-1", measured_at=at,
                   received_at=at + timedelta(seconds=5),
                   registers=(RegisterValue(register="total", value=Decimal(100) + Decimal("0.02") * i,
                                            unit=Unit.M3),))


def main() -> None:
    meter = make_meter(HOUR)
    state = MeterSeries(series_id="M-1")
    print("reads kept | ms CPU per reading, one by one | merged, 20 at once | state JSON | parse | write")
    for i in range(max(MARKS) + 1):
        state = apply_reading(state, meter.context, meter.rules, raw(i), T0 + i * HOUR + timedelta(seconds=10)).state
        if i in MARKS:
            later = [raw(i + j) for j in range(1, 21)]
            now = T0 + (i + 21) * HOUR
            started, probe = time.process_time(), state
            for read in later:
                probe = apply_reading(probe, meter.context, meter.rules, read, now).state
            one_by_one = (time.process_time() - started) / 20
            started = time.process_time()
            merged = apply_readings(state, meter.context, meter.rules, later, now).state
            at_once = (time.process_time() - started) / 20
            assert [p.point for p in merged.published] == [p.point for p in probe.published]  # the same series
            text = state.model_dump_json()
            started = time.process_time()
            for _ in range(5):
                MeterSeries.model_validate_json(text)
            parse = (time.process_time() - started) / 5
            started = time.process_time()
            for _ in range(5):
                state.model_dump_json()
            write = (time.process_time() - started) / 5
            print(f"{len(state.reads):10d} | {one_by_one * 1000:24.2f} | {at_once * 1000:18.2f} | "
                  f"{len(text) / 1024:6.0f} KiB | {parse * 1000:5.1f} | {write * 1000:5.1f}")


if __name__ == "__main__":
    main()
