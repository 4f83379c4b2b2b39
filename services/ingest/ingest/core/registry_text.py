"""Registry values as operators write them in forms and spreadsheets, parsed and written back.

``daily 01:00 jitter 30m``, ``hourly``, ``push``; DI byte order ``90 1F``; a nameplate address
with spaces. Parsers raise ValueError with a reason a person can act on.
"""

from __future__ import annotations

import re
from datetime import time

from amiflow_schemas.events.registry import DiByteOrder, ScheduleKind

from ingest.core.registry import ReadSchedule

_SCHEDULE = re.compile(
    r"^(?P<kind>daily|hourly|push)(?:\s+(?:at\s+)?(?P<at>\d{1,2}:\d{2}))?"
    r"(?:\s+jitter\s+(?P<jitter>\d+)\s*(?P<unit>s|m|h))?$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
SCHEDULE_FORMS = "'daily HH:MM [jitter N(s|m|h)]', 'hourly [jitter N(s|m|h)]' or 'push'"


def parse_read_schedule(text: str) -> ReadSchedule:
    """``daily 01:00 jitter 30m`` → ReadSchedule(daily, 01:00, 1800)."""
    match = _SCHEDULE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a read schedule; write {SCHEDULE_FORMS}")
    kind = ScheduleKind(match["kind"].lower())
    at = time_of_day(match["at"]) if match["at"] else None
    if (kind is ScheduleKind.DAILY) != (at is not None):
        raise ValueError(f"{text!r}: a daily schedule needs a time HH:MM, and only a daily one has it")
    jitter_s = int(match["jitter"]) * _UNIT_SECONDS[match["unit"].lower()] if match["jitter"] else 0
    if kind is ScheduleKind.PUSH and jitter_s:
        raise ValueError(f"{text!r}: a push meter is not polled, so it has no jitter")
    if jitter_s > 86_400:
        raise ValueError(f"{text!r}: jitter is at most one day")
    return ReadSchedule(kind, at, jitter_s)


def time_of_day(text: str) -> time:
    """``01:00`` → time(1, 0); ValueError for anything that is not a time of day."""
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text} is not a time of day")
    return time(hours, minutes)


def format_read_schedule(schedule: ReadSchedule) -> str:
    """The schedule as parse_read_schedule reads it: ``daily 01:00 jitter 30m``."""
    words = [schedule.kind.value]
    if schedule.at is not None:
        words.append(schedule.at.strftime("%H:%M"))
    if schedule.jitter_s:
        words += ["jitter", _duration(schedule.jitter_s)]
    return " ".join(words)


def _duration(seconds: int) -> str:
    for unit in ("h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_di_order(text: str) -> DiByteOrder:
    """``90 1F``, ``901f`` → DI_90_1F; ``1F 90`` → DI_1F_90."""
    compact = re.sub(r"\s+", "", text).upper()
    for order in DiByteOrder:
        if compact == order.value.replace(" ", ""):
            return order
    raise ValueError(f"{text!r} is not a DI byte order; write '90 1F' or '1F 90'")


def nameplate_address(text: str) -> str:
    """A bus address as printed, spaces dropped and hex letters upper-cased (``0000 1234 abcd``)."""
    return re.sub(r"\s+", "", text).upper()
