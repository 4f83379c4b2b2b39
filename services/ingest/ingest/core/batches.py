"""Deciding a batch of readings at once: each item accepted, a duplicate, a conflict, or rejected.

Items are independent: a bad item never spoils the good ones in the same batch. Inside one batch
the first occurrence of a (meter, instant) wins, exactly as if the items had come one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from amiflow_schemas.events.readings import ReadingReceived

from ingest.core.readings import Outcome, PriorReading, decide, fingerprint

ReadingKey = tuple[str, datetime]  # (meter id, measured_at in UTC)


@dataclass(frozen=True)
class ItemVerdict:
    """What happens to one item of a batch."""

    index: int
    outcome: Outcome
    event_id: UUID  # new for accepted items; the first reading's id for duplicates and conflicts


def reading_key(reading: ReadingReceived) -> ReadingKey:
    """Two readings of one meter at one instant are the same reading, whatever offset they were sent in."""
    return reading.meter_id, reading.measured_at.astimezone(UTC)


def decide_batch(priors: Mapping[ReadingKey, PriorReading], items: Sequence[tuple[int, ReadingReceived]],
                 new_ids: Sequence[UUID]) -> list[ItemVerdict]:
    """Decide every valid item against what was accepted before and earlier in the batch."""
    known = dict(priors)
    verdicts = []
    for (index, reading), new_id in zip(items, new_ids, strict=True):
        key = reading_key(reading)
        prior = known.get(key)
        outcome = decide(prior, reading)
        if prior is None:
            known[key] = PriorReading(new_id, fingerprint(reading))
            verdicts.append(ItemVerdict(index, outcome, new_id))
        else:
            verdicts.append(ItemVerdict(index, outcome, prior.event_id))
    return verdicts
