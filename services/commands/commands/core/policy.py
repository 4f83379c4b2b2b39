"""A tenant's cut-off policy as data, and when it lets a cut-off go out.

Quiet windows, weekends and holidays are local wall-clock rules in the tenant's time zone: "no
cut-off 18:00-08:00, at weekends and on holidays" holds a depletion on Friday 23:10 until Monday
08:00 (billing.md B4). Restores are never held: they go out as soon as the money is there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import Enum, StrEnum
from typing import Any, Self
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import CommandKind, ScheduleHold
from amiflow_schemas.primitives import Identifier, Text, Utility
from pydantic import field_serializer, model_validator

from commands.core.model import Configuration


class Weekday(StrEnum):
    """A day of the week, as a policy names it."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEKDAYS = tuple(Weekday)


def weekday_of(day: date) -> Weekday:
    """The weekday of a date."""
    return _WEEKDAYS[day.weekday()]


def in_order(members: frozenset[Any]) -> list[Any]:
    """A set's members in a fixed order (enums as declared, dates by date) for JSON: iterating a frozenset
    follows string hashing, which differs from process to process, and the same policy must read the same."""
    return sorted(members, key=lambda m: list(type(m)).index(m) if isinstance(m, Enum) else m)


class QuietWindow(Configuration):
    """Local hours with no cut-off, starting on the given weekdays; an end at or before the start is the next day."""

    start: time
    end: time
    weekdays: frozenset[Weekday] = frozenset(Weekday)

    @field_serializer("weekdays", when_used="json")
    def _weekdays_in_order(self, weekdays: frozenset[Weekday]) -> list[Weekday]:
        return in_order(weekdays)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("a quiet window needs different start and end times (use quiet_weekdays for whole days)")
        return self

    def span(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The window that starts on ``day``, as UTC instants; None when it does not start that day."""
        if weekday_of(day) not in self.weekdays:
            return None
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return _instant(day, self.start, zone), _instant(end_day, self.end, zone)


class CutOffPolicy(Configuration):
    """What a tenant cuts when an account is depleted, when it may, and how it restores."""

    policy_id: Identifier
    cut_utilities: frozenset[Utility]  # e.g. {electricity}: "cut electricity, not water"
    quiet_windows: tuple[QuietWindow, ...] = ()
    quiet_weekdays: frozenset[Weekday] = frozenset()  # whole days, e.g. {sat, sun}
    holidays: frozenset[date] = frozenset()  # local dates
    working_days: frozenset[date] = frozenset()  # weekend dates made working days (调休) lift quiet_weekdays
    min_cut_off_interval: timedelta = timedelta(0)  # per device, from the last cut-off sent
    restore_on_balance_restored: bool = True
    # Billing's account events as service operations: a meter connected to a new account is opened
    # (valve open / relay close allowed); a meter unlinked on move-out gets a final read, then is closed.
    open_on_connect: bool = True
    close_on_move_out: bool = True
    relay_restore: CommandKind = CommandKind.RELAY_CLOSE_ALLOWED  # or relay_close_direct
    command_ttl: timedelta = timedelta(days=2)  # from the send time to expiry

    @field_serializer("cut_utilities", "quiet_weekdays", "holidays", "working_days", when_used="json")
    def _sets_in_order(self, members: frozenset[Any]) -> list[Any]:
        return in_order(members)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.relay_restore not in (CommandKind.RELAY_CLOSE_ALLOWED, CommandKind.RELAY_CLOSE_DIRECT):
            raise ValueError("relay_restore is relay_close_allowed or relay_close_direct")
        if self.command_ttl <= timedelta(0) or self.min_cut_off_interval < timedelta(0):
            raise ValueError("command_ttl must be positive and min_cut_off_interval not negative")
        # Beyond a year is a typo, and JSON could not carry it: pydantic writes 400 days as P1Y35D, which
        # is no ISO 8601 duration (days need months before them).
        if max(self.command_ttl, self.min_cut_off_interval) > timedelta(days=365):
            raise ValueError("command_ttl and min_cut_off_interval are at most 365 days")
        return self


class AccountExemption(Configuration):
    """An account that must not be cut off through a local date (inclusive), e.g. a medical need."""

    account_id: Identifier
    until: date
    reason: Text

    def ends_at(self, zone: ZoneInfo) -> datetime:
        """The first instant after the exemption: the next local midnight."""
        return _instant(self.until + timedelta(days=1), time(0), zone)


_HORIZON = timedelta(days=400)  # no allowed instant within this: the policy forbids cut-offs outright


def next_allowed_instant(policy: CutOffPolicy, instant: datetime, zone: ZoneInfo) -> datetime:
    """The earliest instant at or after ``instant`` outside every quiet window, weekend and holiday."""
    return allowed_from(policy, instant, zone)[0]


def allowed_from(policy: CutOffPolicy, instant: datetime, zone: ZoneInfo) -> tuple[datetime, tuple[ScheduleHold, ...]]:
    """The earliest allowed instant, and which rules held the cut-off back."""
    at, holds = instant.astimezone(UTC), set[ScheduleHold]()
    while at - instant < _HORIZON:
        blocked = _blocked_until(policy, at, zone)
        if blocked is None:
            return at.astimezone(zone), tuple(h for h in ScheduleHold if h in holds)
        at, hold = blocked
        holds.add(hold)
    raise ValueError(f"policy {policy.policy_id} allows no cut-off within {_HORIZON.days} days")


def _blocked_until(policy: CutOffPolicy, at: datetime, zone: ZoneInfo) -> tuple[datetime, ScheduleHold] | None:
    day = at.astimezone(zone).date()
    next_midnight = _instant(day + timedelta(days=1), time(0), zone)
    if day in policy.holidays:
        return next_midnight, ScheduleHold.HOLIDAY
    if weekday_of(day) in policy.quiet_weekdays and day not in policy.working_days:
        return next_midnight, ScheduleHold.QUIET_WINDOW
    for window in policy.quiet_windows:
        for start_day in (day - timedelta(days=1), day):  # a night window began yesterday
            span = window.span(start_day, zone)
            if span is not None and span[0] <= at < span[1]:
                return span[1], ScheduleHold.QUIET_WINDOW
    return None


def earliest_cut_off(policy: CutOffPolicy, now: datetime, zone: ZoneInfo, exempt_until: datetime | None,
                     last_cut_off_at: datetime | None) -> tuple[datetime, tuple[ScheduleHold, ...]]:
    """When a cut-off may go out: after any exemption and the minimum interval, then outside quiet times."""
    start, holds = now, set[ScheduleHold]()
    if exempt_until is not None and exempt_until > start:
        start = exempt_until
        holds.add(ScheduleHold.EXEMPTION)
    if last_cut_off_at is not None and last_cut_off_at + policy.min_cut_off_interval > start:
        start = last_cut_off_at + policy.min_cut_off_interval
        holds.add(ScheduleHold.MIN_INTERVAL)
    send_at, quiet = allowed_from(policy, start, zone)
    return send_at, tuple(h for h in ScheduleHold if h in holds or h in quiet)


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    # Through UTC: aware datetimes sharing one tzinfo compare by wall time, which is wrong in a DST fold.
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)
