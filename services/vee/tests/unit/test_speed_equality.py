"""The shortcuts the engine takes per reading give exactly what the plain computations give."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.readings import EstimationMethod, RegisterValue, ValidationStatus
from amiflow_schemas.primitives import Unit
from vee.core.aggregation import aggregate, bucket_changes, view_changes
from vee.core.grid import Granularity, ReadGrid
from vee.core.model import Check, EditNote, PublishedPoint, SeriesPoint
from vee.core.rules import DEFAULT_RULE, ObjectGroups, RuleTimeline, RuleVersion, VeeParameters
from vee.core.versions import publication_id, reconcile_points

H = timedelta(hours=1)
_STATUSES = (ValidationStatus.ACTUAL, ValidationStatus.ESTIMATED, ValidationStatus.EDITED, ValidationStatus.FAILED,
             ValidationStatus.MISSING)


def _point(at: datetime, previous_at: datetime | None, consumption: Decimal | None,
           status: ValidationStatus = ValidationStatus.ACTUAL) -> SeriesPoint:
    return SeriesPoint(at=at, status=status, method=None, meter_id="M-1", registers=(), consumption=consumption,
                       previous_at=previous_at, source_event_id=None, rule_id="vee-defaults")


def _series(rng: random.Random, start: datetime, slots: int, step: timedelta) -> list[SeriesPoint]:
    points, previous = [], None
    for index in range(slots):
        at = start + index * step
        if rng.random() < 0.1:  # a gap: the next point's interval spans it
            continue
        consumption = Decimal(rng.randint(0, 900)) / Decimal(rng.choice([10, 100, 1000]))
        points.append(_point(at, previous, consumption if previous else None, rng.choice(_STATUSES)))
        previous = at
    return points


def _changed(rng: random.Random, points: list[SeriesPoint]) -> list[SeriesPoint]:
    """The same series after late data: a few points change value, status or interval; some go, one comes."""
    changed = list(points)
    for _ in range(rng.randint(2, 12)):
        index = rng.randrange(len(changed))
        old = changed[index]
        roll = rng.random()
        if roll < 0.4:
            changed[index] = old.model_copy(update={"consumption": (old.consumption or Decimal(0)) + Decimal("0.25")})
        elif roll < 0.6:
            changed[index] = old.model_copy(update={"status": rng.choice(_STATUSES)})
        elif roll < 0.7:
            changed[index] = old.model_copy(update={"consumption": (old.consumption or Decimal(1)) * 1})  # same value
        elif roll < 0.8:
            changed[index] = old.model_copy(update={"consumption": Decimal("1.50"), "checks": (Check.SPIKE,)})
        elif roll < 0.9 and index > 0:
            del changed[index]
        else:
            changed.append(_point(old.at + timedelta(days=40), old.at, Decimal(7)))
    return sorted(changed, key=lambda p: p.at)


@pytest.mark.parametrize(("zone", "step"), [("UTC", H), ("Europe/Berlin", H), ("Europe/Berlin", timedelta(days=1)),
                                            ("Australia/Lord_Howe", timedelta(minutes=30)),
                                            ("Asia/Kathmandu", timedelta(hours=3))])
@pytest.mark.parametrize("seed", range(6))
def test_bucket_changes_from_the_touched_buckets_equal_those_of_full_aggregations(zone, step, seed):
    rng = random.Random(seed)
    tz = ZoneInfo(zone)
    before = _series(rng, datetime(2026, 3, 20, 0, 23, tzinfo=UTC), 400, step)
    after = _changed(rng, before)
    for granularity in Granularity:
        full = bucket_changes(aggregate(before, granularity, tz), aggregate(after, granularity, tz))
        assert view_changes(before, after, granularity, tz) == full
        assert view_changes(before, after, granularity, tz, aggregate(after, granularity, tz)) == full
        # str() keeps a Decimal's exponent, which == ignores: the events must carry the same text.
        assert [str(c) for c in view_changes(before, after, granularity, tz)] == [str(c) for c in full]


def test_bucket_changes_see_points_that_fail_vanish_or_become_estimates():
    start = datetime(2026, 1, 5, tzinfo=UTC)
    before = [_point(start + i * H, start + (i - 1) * H if i else None, Decimal(1) if i else None) for i in range(48)]
    after = [*before[:30], before[30].model_copy(update={"status": ValidationStatus.FAILED}), *before[31:40],
             before[40].model_copy(update={"status": ValidationStatus.ESTIMATED}), *before[42:]]
    changes = view_changes(before, after, Granularity.HOUR, ZoneInfo("UTC"))
    assert [(c.start, c.previous_total, c.total, c.estimated_s) for c in changes] == [
        (start + 29 * H, Decimal(1), Decimal(0), Decimal(0)), (start + 39 * H, Decimal(1), Decimal(1), Decimal(3600)),
        (start + 40 * H, Decimal(1), Decimal(0), Decimal(0))]


def _version(rule_id: str, effective_from: datetime, **scope: str) -> RuleVersion:
    return RuleVersion(rule_id=rule_id, effective_from=effective_from, scope=ObjectGroups(**scope),
                       parameters=VeeParameters())


def _naive_at(versions: tuple[RuleVersion, ...], instant: datetime) -> RuleVersion:
    ranked = sorted(versions, key=lambda v: (v.scope.specificity(), v.effective_from, v.rule_id), reverse=True)
    return next((v for v in ranked if v.effective_from <= instant), DEFAULT_RULE)


def test_rule_timeline_answers_like_a_scan_of_its_ranked_versions():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    versions = (_version("base@1", t0), _version("base@2", t0 + timedelta(days=10)),
                _version("res@1", t0 + timedelta(days=5), customer_type="res"),
                _version("res-dma@1", t0 + timedelta(days=20), customer_type="res", district="D-1"),
                _version("res@2", t0 + timedelta(days=5), customer_type="res"),  # same start: the id decides
                _version("berlin@1", datetime(2026, 1, 15, 1, tzinfo=ZoneInfo("Europe/Berlin")), customer_type="res",
                         meter_model="X"))
    timeline = RuleTimeline(versions)
    instants = [t0 + k * timedelta(hours=7) for k in range(-10, 120)]
    instants += [v.effective_from for v in versions] + [v.effective_from - timedelta(microseconds=1) for v in versions]
    for instant in instants:
        assert timeline.at(instant) is _naive_at(versions, instant), instant
    assert {timeline.at(i).rule_id for i in instants} == {"vee-defaults", "base@1", "res@2", "berlin@1",
                                                           "res-dma@1"}
    assert RuleTimeline(()).at(t0) is DEFAULT_RULE


def test_a_remembered_next_slot_is_never_answered_for_an_instant_in_another_zone():
    # Adding 3 h in Europe/Berlin is wall-clock arithmetic: across the autumn change it differs from UTC,
    # and the two instants compare equal (neither is ambiguous), so a memo keyed on the instant would mix them.
    berlin, three_hours = ZoneInfo("Europe/Berlin"), 3 * H
    slot = datetime(2026, 10, 24, 22, tzinfo=UTC)
    grid = ReadGrid(three_hours, berlin, time(0))
    fresh = ReadGrid(three_hours, berlin, time(0)).next(slot.astimezone(berlin))
    assert slot == slot.astimezone(berlin) and grid.next(slot) != fresh  # the premise
    assert grid.next(slot.astimezone(berlin)) == fresh
    assert [grid.floor(slot + k * timedelta(minutes=50)) for k in range(9)] == [
        ReadGrid(three_hours, berlin, time(0)).floor(slot + k * timedelta(minutes=50)) for k in range(9)]


_ELSEWHERE = {  # a different value for every field of a point
    "at": datetime(2026, 1, 5, 2, tzinfo=UTC), "status": ValidationStatus.ESTIMATED,
    "method": EstimationMethod.LINEAR_INTERPOLATION, "meter_id": "M-2",
    "registers": (RegisterValue(register="total", value=Decimal(9), unit=Unit.M3),),
    "consumption": Decimal(2), "previous_at": datetime(2026, 1, 4, 23, tzinfo=UTC), "reverse_volume": Decimal(1),
    "register_consumption": (RegisterValue(register="T1", value=Decimal(1), unit=Unit.M3),),
    "checks": (Check.HIGH,), "source_event_id": UUID(int=2),
    "edit": EditNote(edit_id=UUID(int=3), version=1, edited_by="op-1", edited_at=datetime(2026, 1, 6, tzinfo=UTC),
                     reason_code="misread", comment=None),
    "rule_id": "other@1",
}


@pytest.mark.parametrize("field", sorted(_ELSEWHERE))
def test_reconciliation_notices_a_change_in_any_field_of_a_point(field):
    assert set(_ELSEWHERE) == set(SeriesPoint.model_fields)  # a new field must be compared as well
    at = datetime(2026, 1, 5, 1, tzinfo=UTC)
    old = _point(at, at - H, Decimal(1))
    published = PublishedPoint(version=1, publication_id=publication_id("demo", "M-1", at, 1), point=old)
    new = old.model_copy(update={field: _ELSEWHERE[field]})
    reconciled = reconcile_points([published], [new], "demo", "M-1", RuleTimeline(()), None)
    assert reconciled.published or reconciled.revised
    assert new in [p.point for p in reconciled.view]
    unchanged = reconcile_points([published], [old.model_copy()], "demo", "M-1", RuleTimeline(()), None)
    assert (unchanged.published, unchanged.revised, unchanged.view) == ((), (), (published,))
