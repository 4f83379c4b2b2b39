"""When to poll each meter, and how a DTU's bus is shared (dtu-connections.md §3).

A meter's read schedule is daily at a local time or hourly, spread by a jitter that is derived
from the meter id: the same meter is read at the same minute every day (stable profiles, and a
restart does not reshuffle the fleet), while a thousand meters behind one schedule do not all
ask at 01:00:00. Push meters report by themselves and are never polled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from amiflow_runtime.schedule import poll_offset
from amiflow_schemas.events.registry import ScheduleKind

from ingest.core.registry import ReadSchedule

DEFAULT_DAILY_AT = time(1, 0)  # the customary night read, when buses and the cellular network are quiet


def next_poll(schedule: ReadSchedule, meter_id: str, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first poll time strictly after `after` (aware), or None for push meters."""
    offset = poll_offset(meter_id, schedule.jitter_s)
    if schedule.kind is ScheduleKind.PUSH:
        return None
    if schedule.kind is ScheduleKind.HOURLY:
        hour = after.astimezone(tz).replace(minute=0, second=0, microsecond=0)
        candidate = hour + timedelta(seconds=offset.total_seconds() % 3600)
        return candidate if candidate > after else candidate + timedelta(hours=1)
    local = after.astimezone(tz)
    for days in (0, 1, 2):  # 2: a DST gap can push today's slot past `after` by at most a day
        day = local.date() + timedelta(days=days)
        # Local wall time → aware instant; zoneinfo resolves a nonexistent time forward (fold=0).
        at = schedule.at or DEFAULT_DAILY_AT
        candidate = datetime.combine(day, at, tzinfo=tz) + offset
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a daily slot exists within two days")


@dataclass(frozen=True)
class BusPolicy:
    """One request in flight per DTU bus; a few seconds each, a small retry budget (§3)."""

    reply_timeout_s: float = 5.0
    retries: int = 2
    min_gap_s: float = 0.2  # rate limit between requests on one DTU
    suspect_after_misses: int = 3  # consecutive timeouts that make the DTU link suspect
