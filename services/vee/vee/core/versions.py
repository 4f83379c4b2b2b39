"""Versions of published points: what is new, what a correction supersedes, and why (vee.md §3, V15).

Each slot's current view is its highest version; an earlier version is never changed, a later one
supersedes it. Publication ids are name-based UUIDs of (tenant, series, slot, version), so replaying
the same inputs gives the same event ids and the consumer's inbox drops the repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid5

from amiflow_schemas.events.readings import CorrectionReason, ValidationStatus

from vee.core.model import Check, PublishedPoint, SeriesPoint
from vee.core.rules import RuleTimeline

_NAMESPACE = UUID("6f1d8a8e-4a59-5c43-9b6e-7c2b1a0f5e11")


def publication_id(tenant_id: str, series_id: str, slot: datetime, version: int) -> UUID:
    """The event id of one version of one slot."""
    return uuid5(_NAMESPACE, f"reading/{tenant_id}/{series_id}/{slot.astimezone(UTC).isoformat()}/{version}")


@dataclass(frozen=True, slots=True)
class PointPublished:
    """A point to publish: version 1 is a ReadingValidated, later ones a ReadingCorrected."""

    point: SeriesPoint
    version: int
    publication_id: UUID
    supersedes: UUID | None
    reason: CorrectionReason | None


def _event_content(point: SeriesPoint) -> tuple[object, ...]:
    # What a ReadingValidated carries; a change in review flags alone is not re-published.
    return (point.status, point.method, point.registers, point.consumption, point.previous_at,
            point.source_event_id, point.register_consumption, point.edit, point.meter_id)


def _review(point: SeriesPoint) -> tuple[object, ...]:
    # The rest of a point: what a change in review flags alone changes. With _event_content, every field.
    return point.at, point.reverse_volume, point.checks, point.rule_id


def _trivial(old: SeriesPoint, new: SeriesPoint, timeline: RuleTimeline) -> bool:
    # V15: a value that moved less than both thresholds is not worth a correction [ORA-FMR].
    if (old.status, old.method) != (new.status, new.method) or None in (old.consumption, new.consumption):
        return False
    parameters = timeline.parameters(new.at)
    before, after = old.consumption or Decimal(0), new.consumption or Decimal(0)
    change = abs(after - before)
    share = change / abs(before) if before else Decimal(1)
    return change < parameters.replacement_min_change and share < parameters.replacement_min_share


def correction_reason(old: SeriesPoint, new: SeriesPoint) -> CorrectionReason:
    """Why a published point changed."""
    if ValidationStatus.EDITED in (old.status, new.status):
        return CorrectionReason.MANUAL_EDIT
    if old.meter_id != new.meter_id:
        return CorrectionReason.METER_EXCHANGE
    if Check.ROLLOVER in new.checks and Check.ROLLOVER not in old.checks:
        return CorrectionReason.ROLLOVER
    if new.status is ValidationStatus.ACTUAL:
        return CorrectionReason.LATE_ACTUAL
    return CorrectionReason.RE_ESTIMATED


@dataclass(frozen=True, slots=True)
class Reconciled:
    """The new published view, the points to publish, and those whose stored copy changed quietly."""

    view: tuple[PublishedPoint, ...]
    published: tuple[PointPublished, ...]
    revised: tuple[PublishedPoint, ...]  # same version, new review flags: store them, publish nothing


def reconcile_points(published: Sequence[PublishedPoint], derived: Sequence[SeriesPoint], tenant_id: str,
                     series_id: str, timeline: RuleTimeline, settled_before: datetime | None) -> Reconciled:
    """What consumers must be sent so that they catch up with ``derived``."""
    current = {p.point.at: p for p in published}
    facts, revised = [], []
    for point in derived:
        if settled_before is not None and point.at < settled_before:
            continue
        old = current.get(point.at)
        if old is not None and (old.point is point or _event_content(old.point) == _event_content(point)):
            if old.point is not point and _review(old.point) != _review(point):
                current[point.at] = old.model_copy(update={"point": point})
                revised.append(current[point.at])
            continue
        if old is not None and _trivial(old.point, point, timeline):
            continue
        version = 1 if old is None else old.version + 1
        fact = PointPublished(point, version, publication_id(tenant_id, series_id, point.at, version),
                              old.publication_id if old else None,
                              correction_reason(old.point, point) if old else None)
        current[point.at] = PublishedPoint(version=version, publication_id=fact.publication_id, point=point)
        facts.append(fact)
    return Reconciled(tuple(current[at] for at in sorted(current)), tuple(facts), tuple(revised))
