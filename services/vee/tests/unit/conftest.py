"""A small harness for VEE's pure core: one metering point, its context and rules, fed reads in order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

import pytest
from amiflow_schemas.events.alarms import AlarmType
from amiflow_schemas.events.readings import RegisterValue
from amiflow_schemas.primitives import Unit, Utility
from vee.core.context import MeterContext, MeterDevice
from vee.core.engine import Outcome, apply_edit, apply_reading, apply_readings, estimate_silent
from vee.core.episodes import AlarmClearedFact, AlarmRaisedFact
from vee.core.model import ManualEdit, MeterSeries, RawRead, SeriesPoint
from vee.core.rules import RuleSet, RuleVersion, VeeParameters

HOUR = timedelta(hours=1)
_IDS = UUID("5d4f1a3c-0000-5000-8000-000000000000")


def read_id(meter_id: str, at: datetime, value: Any, salt: str = "") -> UUID:
    """A deterministic event id per read, so reruns are comparable."""
    return uuid5(_IDS, f"{meter_id}/{at.isoformat()}/{value}/{salt}")


def raw(at: datetime, value: str | Decimal, meter_id: str = "M-1", unit: Unit = Unit.M3, **extra: Any) -> RawRead:
    """A raw read of the billing register (plus ``registers=`` for more)."""
    registers = extra.pop("registers", ())
    return RawRead(source_event_id=extra.pop("source_event_id", read_id(meter_id, at, value, extra.pop("salt", ""))),
                   meter_id=meter_id, measured_at=at,
                   registers=(RegisterValue(register="total", value=Decimal(value), unit=unit), *registers), **extra)


def rules_with(**parameters: Any) -> RuleSet:
    """A tenant rule set with one version from the epoch that overrides some defaults."""
    return RuleSet(tenant_id="demo", versions=(RuleVersion(
        rule_id="test@1970", effective_from=datetime(1970, 1, 1, tzinfo=UTC),
        parameters=VeeParameters(**parameters)),))


class Meter:
    """One metering point fed through the public entry points, keeping the state and every outcome."""

    def __init__(self, context: MeterContext, rules: RuleSet) -> None:
        self.context, self.rules = context, rules
        self.state = MeterSeries(series_id=context.series_id)
        self.outcomes: list[Outcome] = []

    def _keep(self, outcome: Outcome) -> Outcome:
        self.state = outcome.state
        self.outcomes.append(outcome)
        return outcome

    def read(self, at: datetime, value: str | Decimal, now: datetime | None = None, **extra: Any) -> Outcome:
        """Apply one reading of the billing register, received shortly after it was taken."""
        meter_id = extra.pop("meter_id", self.context.devices[-1].meter_id)
        read = raw(at, value, meter_id=meter_id, unit=extra.pop("unit", self.context.unit), **extra)
        return self._keep(apply_reading(self.state, self.context, self.rules, read, now or at + timedelta(minutes=5)))

    def batch(self, reads: Sequence[tuple[datetime, str | Decimal]], now: datetime | None = None) -> Outcome:
        """Apply many readings at once."""
        meter_id = self.context.devices[-1].meter_id
        raws = [raw(at, value, meter_id=meter_id, unit=self.context.unit) for at, value in reads]
        return self._keep(apply_readings(self.state, self.context, self.rules, raws, now or reads[-1][0] + HOUR))

    def estimate(self, until: datetime, now: datetime) -> Outcome:
        """Run the silent-meter timer."""
        return self._keep(estimate_silent(self.state, self.context, self.rules, until, now))

    def edit(self, at: datetime, value: str | None, edited_at: datetime, edit_id: UUID | None = None) -> Outcome:
        """An operator's edit of one slot (None deletes it)."""
        edit = ManualEdit(edit_id=edit_id or uuid5(_IDS, f"edit/{at}/{value}/{edited_at}"), measured_at=at,
                          value=Decimal(value) if value is not None else None, edited_by="op-1",
                          edited_at=edited_at, reason_code="misread", comment="checked on site")
        return self._keep(apply_edit(self.state, self.context, self.rules, edit, edited_at))

    @property
    def points(self) -> dict[datetime, SeriesPoint]:
        """The current published view by slot."""
        return {p.point.at: p.point for p in self.state.published}

    def point(self, at: datetime) -> SeriesPoint:
        """The current point of one slot."""
        return self.points[at]

    def register(self, at: datetime) -> Decimal:
        """The billing register value of a slot's current point."""
        return self.point(at).registers[0].value

    def raised(self, kind: AlarmType) -> list[AlarmRaisedFact]:
        """Every raise of ``kind`` in all outcomes so far."""
        return [a for o in self.outcomes for a in o.alarms
                if isinstance(a, AlarmRaisedFact) and a.condition.kind is kind]

    def cleared(self, kind: AlarmType) -> list[AlarmClearedFact]:
        """Every clear of ``kind`` in all outcomes so far."""
        return [a for o in self.outcomes for a in o.alarms if isinstance(a, AlarmClearedFact) and a.kind is kind]


def make_meter(interval: timedelta = HOUR, *, utility: Utility = Utility.WATER, unit: Unit = Unit.M3,
               zone: str = "UTC", devices: Iterable[MeterDevice] | None = None, multiplier: str = "1",
               dial_count: int | None = None, resolution: str = "1", rules: RuleSet | None = None,
               **context: Any) -> Meter:
    """A metering point with one device unless ``devices`` are given."""
    chain = tuple(devices) if devices else (MeterDevice(meter_id="M-1", multiplier=Decimal(multiplier),
                                                        dial_count=dial_count, resolution=Decimal(resolution)),)
    ctx = MeterContext(tenant_id="demo", series_id=chain[0].meter_id, utility=utility, unit=unit, time_zone=zone,
                       read_interval=interval, devices=chain, **context)
    return Meter(ctx, rules or RuleSet(tenant_id="demo"))


@pytest.fixture
def meter() -> Callable[..., Meter]:
    """Build a metering point: ``meter(HOUR, dial_count=5, ...)``."""
    return make_meter


@pytest.fixture
def rules() -> Callable[..., RuleSet]:
    """Build a rule set overriding some defaults: ``rules(estimation_wait=HOUR)``."""
    return rules_with


@pytest.fixture
def raw_read() -> Callable[..., RawRead]:
    """Build a raw read: ``raw_read(at, "100.5", meter_id=...)``."""
    return raw
