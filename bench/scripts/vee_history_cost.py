"""VEE's pure core: CPU per reading against the number of reads a series keeps (no database, no Kafka).

    .venv/bin/python bench/scripts/vee_history_cost.py

Feeds one hourly water meter in order and, at a few history lengths, times 20 more readings. The kept window
in production is max(ADU window 30 d, like-day lookback 4 weeks) = ~720 hourly reads per series (engine.prune).
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
from vee.core.engine import apply_reading
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
    for i in range(max(MARKS) + 1):
        state = apply_reading(state, meter.context, meter.rules, raw(i), T0 + i * HOUR + timedelta(seconds=10)).state
        if i in MARKS:
            started, probe = time.process_time(), state
            for j in range(1, 21):
                at = T0 + (i + j) * HOUR + timedelta(seconds=10)
                probe = apply_reading(probe, meter.context, meter.rules, raw(i + j), at).state
            per_reading = (time.process_time() - started) / 20
            size = len(state.model_dump_json())
            print(f"reads kept {len(state.reads):5d}   {per_reading * 1000:7.2f} ms CPU per reading   "
                  f"state JSON {size / 1024:5.0f} KiB")


if __name__ == "__main__":
    main()
