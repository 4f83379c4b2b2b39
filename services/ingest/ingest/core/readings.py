"""Accepting a reading from an integrator: the head-end's decisions, free of I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from amiflow_schemas import Envelope, new_envelope
from amiflow_schemas.events.readings import ReadingReceived

PRODUCER = "ingest"


class Outcome(StrEnum):
    """What happens to a submitted reading."""

    ACCEPTED = "accepted"  # new: recorded and published as ReadingReceived
    DUPLICATE = "duplicate"  # the same reading again: nothing new, answer with the first event id
    CONFLICT = "conflict"  # same meter and instant, different values: refused, never overwritten


class ReadingRefused(ValueError):
    """A well-formed reading the head-end will not accept, with the reason to show the caller."""


@dataclass(frozen=True)
class PriorReading:
    """What ingest remembers of a reading it accepted before (same tenant, meter and instant)."""

    event_id: UUID
    fingerprint: str


def fingerprint(reading: ReadingReceived) -> str:
    """A digest of the values that make two submissions the same reading (7.5 = 7.50, -0 = 0)."""
    canonical = json.dumps(
        {"utility": reading.utility.value,
         "registers": sorted([r.register, str(r.value.normalize() + 0), r.unit.value] for r in reading.registers)},
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_clock(reading: ReadingReceived, now: datetime, max_future_skew: timedelta) -> None:
    """Refuse readings stamped in the future; late readings are normal (store and forward)."""
    try:
        reading.measured_at.astimezone(UTC)  # readings are keyed by their UTC instant
    except OverflowError:  # e.g. 0001-01-01T00:00+08:00 is before year 1 in UTC
        when = reading.measured_at.isoformat()
        raise ReadingRefused(f"measured_at {when} is outside the years 1-9999 in UTC") from None
    if reading.measured_at - now > max_future_skew:
        raise ReadingRefused(
            f"measured_at {reading.measured_at.isoformat()} is more than {int(max_future_skew.total_seconds())} s "
            f"ahead of the head-end clock ({now.isoformat()})"
        )


def decide(prior: PriorReading | None, reading: ReadingReceived) -> Outcome:
    """New, a repeat of what we have, or a contradiction of it."""
    if prior is None:
        return Outcome.ACCEPTED
    return Outcome.DUPLICATE if prior.fingerprint == fingerprint(reading) else Outcome.CONFLICT


def received_event(reading: ReadingReceived, *, tenant_id: str, event_id: UUID, now: datetime,
                   correlation_id: UUID | None = None) -> Envelope[ReadingReceived]:
    """The ReadingReceived event for an accepted reading, keyed by meter."""
    return new_envelope(
        reading, event_id=event_id, tenant_id=tenant_id, key=reading.meter_id,
        occurred_at=reading.measured_at, recorded_at=now, producer=PRODUCER, correlation_id=correlation_id,
    )
