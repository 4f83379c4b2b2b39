"""Rating: a validated reading's consumption priced with the account's tariff (billing.md "Rating").

The state rating needs is one ``TierPeriodState`` per (account, tariff, tier period): the period's
cumulative quantity and its exact cost C. A reading's span is cut at tariff version changes and
tier period starts, its consumption shared out pro rata by time, and each part priced in order
across the tier bounds. The charge posted is round2(C_after) - round2(C_before) per period, so
a period's charges always add up to its rounded exact total (rating step 4).

A time-of-use version prices each register's delta; the period's cumulative quantity still grows
by the reading's total consumption. Tier bounds are multiplied by the account's tier-size factor
as it is when the reading is rated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from uuid import UUID

from amiflow_schemas.events.billing import ChargeApplied, ChargeKind, ChargeLine
from amiflow_schemas.events.readings import ValidatedReading
from amiflow_schemas.events.tariffs import TIME_OF_USE_REGISTERS
from amiflow_schemas.primitives import Unit, Utility

from billing.core.accounts import Account
from billing.core.consumption import BILLABLE
from billing.core.money import ZERO, round_money, split_pro_rata
from billing.core.periods import tier_period, tier_periods
from billing.core.tariffs import Tariff, TariffVersion

RegisterQuantities = tuple[tuple[str, Decimal], ...]


class RatingError(ValueError):
    """A reading the tariff cannot price (wrong unit, no version in force, missing registers …)."""


@dataclass(frozen=True)
class MeterReading:
    """A billable span of one meter: the consumption between the previous validated reading and this one."""

    reading_event_id: UUID  # the ReadingValidated, or the ReadingCorrected that replaced it
    meter_id: str
    utility: Utility
    start: datetime  # previous_measured_at
    end: datetime  # measured_at
    quantity: Decimal  # multiplier applied, in ``unit``
    unit: Unit
    registers: RegisterQuantities  # time-of-use deltas by register (T1..T4); empty when none

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None or self.end.utcoffset() is None:
            raise RatingError(f"reading {self.reading_event_id}: its span needs aware datetimes")
        if self.start >= self.end:
            raise RatingError(f"reading {self.reading_event_id}: its span must start before it ends")
        if self.quantity < 0 or any(quantity < 0 for _, quantity in self.registers):
            raise RatingError(f"reading {self.reading_event_id}: negative consumption cannot be rated")


def reading_of(event_id: UUID, event: ValidatedReading) -> MeterReading | None:
    """The span a ReadingValidated (or ReadingCorrected) bills; None when it carries nothing billable."""
    if event.status not in BILLABLE or event.previous_measured_at is None:
        return None
    if event.consumption is None or event.consumption_unit is None:
        return None
    registers = tuple((r.register, r.value) for r in event.register_consumption or ()
                      if r.register in TIME_OF_USE_REGISTERS)
    return MeterReading(event_id, event.meter_id, event.utility, event.previous_measured_at, event.measured_at,
                        event.consumption, event.consumption_unit, registers)


@dataclass(frozen=True)
class TierPeriodState:
    """One account's cumulative consumption and exact cost under one tariff in one tier period."""

    start: datetime
    end: datetime
    quantity: Decimal
    exact_cost: Decimal  # C: never rounded; the ledger has taken round2(C) for the period

    @property
    def posted(self) -> Decimal:
        """What the ledger has taken for this period: the rounded exact cost."""
        return round_money(self.exact_cost)


TierPeriods = Mapping[datetime, TierPeriodState]
"""Tier period states of one (account, tariff), by period start."""


@dataclass(frozen=True)
class PricedSlice:
    """A part of a reading priced at one tier or register of one tariff version."""

    period_start: datetime
    version_id: str
    tier: int | None
    register: str | None
    quantity: Decimal
    unit_price: Decimal

    @property
    def cost(self) -> Decimal:
        """quantity x unit_price, exact."""
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class _Segment:
    period: tuple[datetime, datetime]
    version: TariffVersion
    quantity: Decimal
    registers: RegisterQuantities


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta // timedelta(microseconds=1))


def _segments(reading: MeterReading, account: Account, tariff: Tariff) -> list[_Segment]:
    zone, kind, anchor = account.zone, tariff.tier_period, account.billing_year_start
    bounds = [end for _, end in tier_periods(kind, reading.start, reading.end, zone, anchor)[:-1]]
    # In UTC: Python subtracts two datetimes of one ZoneInfo as wall-clock times, which would
    # miscount the shares across a daylight-saving change.
    cuts = sorted({cut.astimezone(UTC) for cut in (reading.start, reading.end, *bounds,
                                                   *tariff.changes_within(reading.start, reading.end))})
    pieces = list(pairwise(cuts))
    weights = [_seconds(end - start) for start, end in pieces]
    quantities = split_pro_rata(reading.quantity, weights)
    per_register = [split_pro_rata(quantity, weights) for _, quantity in reading.registers]
    segments = []
    for index, (start, _) in enumerate(pieces):
        version = tariff.version_at(start)
        if version is None:
            raise RatingError(f"tariff {tariff.tariff_id} has no version in force at {start.isoformat()}")
        registers = tuple((name, shares[index]) for (name, _), shares in zip(reading.registers, per_register,
                                                                              strict=True))
        segments.append(_Segment(tier_period(kind, start, zone, anchor), version, quantities[index], registers))
    return segments


def _tier_slices(segment: _Segment, already: Decimal, factor: Decimal) -> list[PricedSlice]:
    position, remaining, slices = already, segment.quantity, []
    for number, tier in enumerate(segment.version.tiers, start=1):
        upper = None if tier.up_to is None else tier.up_to * factor
        room = remaining if upper is None else min(remaining, max(upper - position, ZERO))
        if room > 0:
            slices.append(PricedSlice(segment.period[0], segment.version.version_id, number, None, room,
                                      tier.unit_price))
            position, remaining = position + room, remaining - room
    return slices


def _register_slices(segment: _Segment, meter_id: str) -> list[PricedSlice]:
    if not segment.registers and segment.quantity > 0:
        raise RatingError(f"meter {meter_id}: a time-of-use tariff needs per-register consumption")
    slices = []
    for register, quantity in sorted(segment.registers):
        price = segment.version.register_price(register)
        if price is None:
            raise RatingError(f"tariff version {segment.version.version_id} has no price for register {register}")
        if quantity > 0:
            slices.append(PricedSlice(segment.period[0], segment.version.version_id, None, register, quantity, price))
    return slices


def price_readings(readings: Iterable[MeterReading], account: Account, tariff: Tariff, periods: TierPeriods,
                   only: frozenset[datetime] | None = None) -> tuple[dict[datetime, TierPeriodState],
                                                                     list[list[PricedSlice]]]:
    """Rate readings in order from the given period states: the new states and each reading's slices.

    With ``only``, parts of spans in other tier periods are skipped (re-rating replays just the
    periods a correction touches).
    """
    states = dict(periods)
    priced = []
    for reading in readings:
        slices: list[PricedSlice] = []
        for segment in _segments(reading, account, tariff):
            start, end = segment.period
            if only is not None and start not in only:
                continue
            state = states.get(start)
            if state is None:
                state = TierPeriodState(start, end, ZERO, ZERO)
            found = (_register_slices(segment, reading.meter_id) if segment.version.time_of_use
                     else _tier_slices(segment, state.quantity, account.settings.tier_size_factor))
            cost = sum((s.cost for s in found), ZERO)
            states[start] = replace(state, quantity=state.quantity + segment.quantity,
                                    exact_cost=state.exact_cost + cost)
            slices.extend(found)
        priced.append(slices)
    return states, priced


def charge_lines(slices: Iterable[PricedSlice]) -> tuple[ChargeLine, ...]:
    """Slices merged by (version, tier, register, price) into charge lines, in first-seen order."""
    merged: dict[tuple[str, int | None, str | None, Decimal], tuple[Decimal, Decimal]] = {}
    for s in slices:
        key = (s.version_id, s.tier, s.register, s.unit_price)
        quantity, cost = merged.get(key, (ZERO, ZERO))
        merged[key] = (quantity + s.quantity, cost + s.cost)
    return tuple(ChargeLine(tariff_version_id=version, tier=tier, register=register, quantity=quantity,
                            unit_price=price, cost=cost)
                 for (version, tier, register, price), (quantity, cost) in merged.items())


def posted_change(before: TierPeriods, after: TierPeriods) -> Decimal:
    """The money to post: per period, round2(C_after) - round2(C_before) (absent before: zero)."""
    return sum((state.posted - (before[start].posted if start in before else ZERO)
                for start, state in after.items()), ZERO)


def check_fits(reading: MeterReading, account: Account, tariff: Tariff) -> None:
    """Raise RatingError when the tariff cannot price the reading for this account."""
    if reading.utility is not tariff.utility or reading.unit is not tariff.unit:
        raise RatingError(f"tariff {tariff.tariff_id} prices {tariff.utility.value} in {tariff.unit.value}; "
                          f"meter {reading.meter_id} reads {reading.utility.value} in {reading.unit.value}")
    if account.currency != tariff.currency:
        raise RatingError(f"tariff {tariff.tariff_id} is in {tariff.currency}, account {account.account_id} "
                          f"in {account.currency}")


@dataclass(frozen=True)
class Rating:
    """One reading rated: the charge to append (None for zero consumption) and the periods to store."""

    charge: ChargeApplied | None
    amount: Decimal
    periods: dict[datetime, TierPeriodState]  # the tier periods the reading touched, after it


def periods_of(reading: MeterReading, account: Account, tariff: Tariff) -> tuple[tuple[datetime, datetime], ...]:
    """The (start, end) of every tier period the reading's span overlaps: the states rating needs."""
    return tuple(tier_periods(tariff.tier_period, reading.start, reading.end, account.zone,
                              account.billing_year_start))


def rate_reading(reading: MeterReading, account: Account, tariff: Tariff, periods: TierPeriods) -> Rating:
    """Rate a new reading; ``periods`` holds the stored states of ``periods_of(reading)`` (absent: empty)."""
    check_fits(reading, account, tariff)
    touched = {start for start, _ in periods_of(reading, account, tariff)}
    states, (slices,) = price_readings([reading], account, tariff, periods)
    after = {start: state for start, state in states.items() if start in touched}
    before = {start: periods[start] for start in touched if start in periods}
    amount = posted_change(before, after)
    if reading.quantity == 0:
        return Rating(None, amount, after)
    charge = ChargeApplied(
        account_id=account.account_id, kind=ChargeKind.CONSUMPTION, meter_id=reading.meter_id,
        utility=reading.utility, reading_event_id=reading.reading_event_id, period_start=reading.start,
        period_end=reading.end, quantity=reading.quantity, quantity_unit=reading.unit,
        lines=charge_lines(slices), amount=amount, currency=account.currency,
        tier_period_cost=after[max(touched)].exact_cost,
    )
    return Rating(charge, amount, after)
