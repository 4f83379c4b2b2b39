"""A household's use of water, gas, heat or electricity as a pure function of time.

A meter register must never run backwards, also across simulator restarts, and must show the same
value for the same seed and instant however often it is read. So use is a closed form of time: a
day's total varies from day to day (a weekly rhythm plus an 11-day wobble, whose sums over any
number of days cost a few additions), and is spread over the day by the household's diurnal shape
(quiet nights, morning and evening peaks). A leak adds a steady flow, at night too. Instantaneous
values (flow rate, power) get extra quarter-hour noise, which never reaches a register.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

HOURS = 24
_MICROS_PER_HOUR = Decimal(3_600_000_000)
_ONE_MICRO = timedelta(microseconds=1)
QUARTER_HOUR = timedelta(minutes=15)

# Relative use in each local hour, 00:00 first. Water and gas peak at breakfast and dinner; heat
# runs all day with a night set-back; electricity peaks in the evening.
SHAPES: dict[str, tuple[int, ...]] = {
    "water": (2, 1, 1, 1, 1, 3, 8, 14, 11, 7, 5, 5, 6, 5, 4, 4, 5, 7, 11, 12, 10, 7, 4, 3),
    "gas": (1, 1, 1, 1, 1, 2, 6, 10, 7, 4, 4, 6, 10, 5, 3, 3, 5, 10, 14, 10, 6, 4, 2, 1),
    "heat": (4, 4, 4, 4, 4, 5, 6, 6, 5, 4, 3, 3, 3, 3, 3, 3, 4, 5, 6, 6, 6, 5, 5, 4),
    "electricity": (3, 2, 2, 2, 2, 2, 3, 5, 5, 4, 4, 4, 5, 4, 4, 4, 5, 7, 9, 10, 9, 8, 6, 4),
}


def milli(rng: random.Random, low: int, high: int) -> Decimal:
    """A seeded Decimal in [low, high] thousandths: exact, unlike a float draw."""
    return Decimal(rng.randint(low, high)).scaleb(-3)


def _cycle_sum(cycle: Sequence[Decimal], days: int) -> Decimal:
    """The sum of ``cycle`` repeated over ``days`` days from its start."""
    whole, rest = divmod(days, len(cycle))
    return whole * sum(cycle, Decimal(0)) + sum(cycle[:rest], Decimal(0))


@dataclass(frozen=True)
class UsageCurve:
    """Cumulative use since ``epoch`` (the installation, a local midnight) as a pure function of time.

    ``daily`` is the mean use per day in the register's unit; ``hourly`` the day's shape (shares of
    the day per local hour); ``weekly`` and ``wobble`` the day-to-day factors; ``leak_per_hour`` a
    steady extra flow. Local hours follow the epoch's UTC offset (no daylight-saving shifts, which
    would make an hour repeat and a register stall or jump).
    """

    epoch: datetime
    daily: Decimal
    hourly: tuple[Decimal, ...]
    weekly: tuple[Decimal, ...]
    wobble: tuple[Decimal, ...]
    leak_per_hour: Decimal = Decimal(0)

    @classmethod
    def draw(cls, rng: random.Random, epoch: datetime, shape: Sequence[int], daily: Decimal,
             leak_per_hour: Decimal = Decimal(0)) -> UsageCurve:
        """A household of its own: the shape perturbed by ±20 % per hour, its own weekly rhythm."""
        weights = [Decimal(w) * milli(rng, 800, 1200) for w in shape]
        total = sum(weights, Decimal(0))
        hourly = tuple(w / total for w in weights)
        weekly = tuple(milli(rng, 850, 1150) for _ in range(7))
        wobble = tuple(milli(rng, -100, 100) for _ in range(11))
        return cls(epoch, daily, hourly, weekly, wobble, leak_per_hour)

    def day_factor(self, day: int) -> Decimal:
        """How much day ``day`` (0 = the installation day) uses, relative to ``daily``."""
        return self.weekly[day % 7] + self.wobble[day % 11]

    def used(self, at: datetime, hours: frozenset[int] | None = None) -> Decimal:
        """Use from the epoch to ``at``; with ``hours``, only what fell in those local hours (tariffs)."""
        if at <= self.epoch:
            return Decimal(0)
        micros = (at - self.epoch) // _ONE_MICRO
        day, in_day = divmod(micros, 24 * 3_600_000_000)
        hour, in_hour = divmod(in_day, 3_600_000_000)
        picked = [h in hours if hours is not None else True for h in range(HOURS)]
        share = sum((s for s, p in zip(self.hourly, picked, strict=True) if p), Decimal(0))
        past_days = _cycle_sum(self.weekly, day) + _cycle_sum(self.wobble, day)
        today = sum((s for s, p in zip(self.hourly[:hour], picked[:hour], strict=True) if p), Decimal(0))
        if picked[hour]:
            today += self.hourly[hour] * Decimal(in_hour) / _MICROS_PER_HOUR
        use = self.daily * (past_days * share + self.day_factor(day) * today)
        if hours is None:
            use += self.leak_per_hour * Decimal(micros) / _MICROS_PER_HOUR
        return use

    def rate(self, at: datetime) -> Decimal:
        """Use per hour at ``at`` (m3/h, kW …), without noise."""
        if at <= self.epoch:
            return Decimal(0)
        day, rest = divmod(at - self.epoch, timedelta(days=1))
        hour = rest // timedelta(hours=1)
        return self.daily * self.day_factor(day) * self.hourly[hour] + self.leak_per_hour


def noise(key: str, at: datetime, low: int = 700, high: int = 1300) -> Decimal:
    """A factor in [low, high] thousandths, fixed per ``key`` and quarter hour (instantaneous values only)."""
    slot = int(at.timestamp()) // int(QUARTER_HOUR.total_seconds())
    digest = hashlib.blake2b(f"{key}:{slot}".encode(), digest_size=8).digest()
    return Decimal(low + int.from_bytes(digest, "big") % (high - low + 1)).scaleb(-3)
