"""Late and out-of-order readings merge: any arrival order gives the in-order series and aggregates."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from amiflow_schemas.events.alarms import AlarmType
from amiflow_schemas.events.readings import RegisterValue
from amiflow_schemas.primitives import Unit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vee.core.aggregation import aggregate
from vee.core.engine import apply_reading, apply_readings, estimate_silent
from vee.core.grid import Granularity, ReadGrid
from vee.core.model import EpisodeOrigin, MeterSeries, RawRead

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 26, 23, tzinfo=UTC)  # Berlin's midnight; three days over its spring-forward night
MODULUS = Decimal(100)  # 5 dials of 1 L in m3


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[timedelta, list[tuple[datetime, Decimal, int]], list[int], int | None]:
    """A meter, its reads (slot, value, offset s), a shuffled arrival order and maybe a timer call."""
    hourly = draw(st.booleans())
    slots = 72 if hourly else 21  # three days of hourly reads, three weeks of daily ones
    interval = H if hourly else D
    uses = draw(st.lists(st.integers(0, 400 if hourly else 9000), min_size=slots, max_size=slots))
    start = draw(st.sampled_from([Decimal("12.345"), Decimal("99.000")]))  # the latter rolls over
    skipped = draw(st.sets(st.integers(1, slots - 1), max_size=slots // 4))
    misread = draw(st.sets(st.integers(1, slots - 1), max_size=2))
    offsets = draw(st.dictionaries(st.integers(0, slots), st.integers(-1200, 1200), max_size=6))
    doubled = draw(st.sets(st.integers(0, slots), max_size=4))
    grid = ReadGrid(interval, ZoneInfo("Europe/Berlin"), time(0))
    instants = list(itertools.islice(grid.slots(T0, T0 + 30 * D), slots + 1))
    truth, reads = start, []
    for index, slot in enumerate(instants):
        truth += Decimal(uses[index - 1]) / 1000 if index else 0
        if index in skipped:
            continue
        shown = (truth - Decimal("0.5") if index in misread else truth) % MODULUS
        reads.append((slot, shown, offsets.get(index, 0)))
        if index in doubled:  # the same slot again, read a litre later
            reads.append((slot, (shown + Decimal("0.001")) % MODULUS, offsets.get(index, 0) + 3))
    order = draw(st.permutations(range(len(reads))))
    timer = draw(st.none() | st.integers(0, len(reads)))
    return interval, reads, list(order), timer


def _raw(index: int, slot: datetime, value: Decimal, offset: int) -> RawRead:
    return RawRead(source_event_id=f"00000000-0000-4000-8000-{index:012d}", meter_id="M-1",
                   measured_at=slot + timedelta(seconds=offset), received_at=slot + timedelta(hours=2, seconds=index),
                   registers=(RegisterValue(register="total", value=value, unit=Unit.M3),))


class Consumer:
    """What a downstream consumer accumulates: bucket deltas, and the last version of every slot."""

    def __init__(self) -> None:
        self.totals: dict[tuple[Granularity, datetime], Decimal] = defaultdict(Decimal)
        self.versions: dict[datetime, tuple[int, object]] = {}

    def take(self, outcome) -> None:
        for change in outcome.buckets:
            self.totals[change.granularity, change.start] += change.delta
        for fact in outcome.points:  # each slot's versions count up and supersede the one before
            version, last_id = self.versions.get(fact.point.at, (0, None))
            assert (fact.version, fact.supersedes) == (version + 1, last_id)
            self.versions[fact.point.at] = (fact.version, fact.publication_id)

    def buckets(self, granularity: Granularity) -> dict[datetime, Decimal]:
        return {start: total for (g, start), total in self.totals.items() if g is granularity and total}


def _feed(meter, raws, order, timer, until):
    state, consumer = MeterSeries(series_id="M-1"), Consumer()
    clock = T0 + 30 * D
    for step, index in enumerate([*order, None]):
        if step == timer:
            outcome = estimate_silent(state, meter.context, meter.rules, until, clock)
            state = outcome.state
            consumer.take(outcome)
        if index is None:
            break
        clock += timedelta(minutes=1)
        outcome = apply_reading(state, meter.context, meter.rules, raws[index], clock)
        state = outcome.state
        consumer.take(outcome)
    return state, consumer


def _daily(meter, state):
    return aggregate([p.point for p in state.published], Granularity.DAY, meter.context.zone)


def _open_kinds(state: MeterSeries) -> set[AlarmType]:
    return {e.kind for e in state.episodes if e.origin is EpisodeOrigin.SERIES and e.ended_at is None}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=arrivals())
def test_any_arrival_order_gives_the_in_order_series_and_aggregates(case, meter, rules):
    interval, reads, order, timer = case
    m = meter(interval, zone="Europe/Berlin", dial_count=5, resolution="0.001", q3_m3_per_h=Decimal("2.5"),
              rules=rules(estimation_wait=H))
    raws = [_raw(i, *read) for i, read in enumerate(reads)]
    until = reads[len(reads) // 2][0]
    shuffled, shuffled_consumer = _feed(m, raws, order, timer, until)
    in_order, in_order_consumer = _feed(m, raws, sorted(range(len(raws)), key=lambda i: raws[i].measured_at),
                                       len(raws) if shuffled.estimated_until else None, until)
    at_once = apply_readings(MeterSeries(series_id="M-1"), m.context, m.rules, raws, T0 + 30 * D).state
    if shuffled.estimated_until:
        at_once = estimate_silent(at_once, m.context, m.rules, until, T0 + 40 * D).state
    view = [p.point for p in shuffled.published]
    assert view == [p.point for p in in_order.published] == [p.point for p in at_once.published]
    assert _daily(m, shuffled) == _daily(m, in_order)
    assert _open_kinds(shuffled) == _open_kinds(in_order)
    for granularity in Granularity:  # the deltas sent along the way add up to the final buckets
        final = {b.start: b.consumption for b in aggregate(view, granularity, m.context.zone) if b.consumption}
        assert shuffled_consumer.buckets(granularity) == final == in_order_consumer.buckets(granularity)
