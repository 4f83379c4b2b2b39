"""Alarm episodes: raised once when a condition begins, cleared once when it ends.

Alarm rules report the conditions they find in the data as episodes (start, end or still open).
Reconciling them with the episodes already known yields exactly the raise and clear facts that are
new, so re-deriving the same data raises nothing twice, and late data that ends or disproves an
episode clears it. An episode keeps the id it was raised with; a new one gets a name-based id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid5

from amiflow_schemas.events.alarms import AlarmSeverity, AlarmSubject, AlarmType, ClearReason, MeasureUnit

from vee.core.model import AlarmEpisode, EpisodeOrigin

_NAMESPACE = UUID("0b0d3a52-3f5e-5e39-8d0b-2b7e3c1d9a40")


@dataclass(frozen=True, slots=True)
class Subject:
    """What alarms are raised on: a meter or a district of a tenant."""

    tenant_id: str
    kind: AlarmSubject
    subject_id: str


@dataclass(frozen=True, slots=True)
class Condition:
    """An abnormal condition an alarm rule found: an episode from started_at, open while ended_at is None."""

    kind: AlarmType
    started_at: datetime
    detected_at: datetime  # when the data first showed it (event time)
    ended_at: datetime | None
    severity: AlarmSeverity
    observed: Decimal | None
    threshold: Decimal | None
    unit: MeasureUnit | None
    description: str
    rule_id: str
    window: tuple[datetime, datetime] | None = None


@dataclass(frozen=True, slots=True)
class AlarmRaisedFact:
    """An alarm to raise (maps onto AlarmRaised; ``kind`` onto AlarmType)."""

    alarm_id: UUID
    subject: Subject
    condition: Condition


@dataclass(frozen=True, slots=True)
class AlarmClearedFact:
    """An alarm to clear (maps onto AlarmCleared)."""

    alarm_id: UUID
    kind: AlarmType
    subject: Subject
    cleared_at: datetime
    reason: ClearReason


AlarmFact = AlarmRaisedFact | AlarmClearedFact


def alarm_id(subject: Subject, kind: AlarmType, origin: EpisodeOrigin, started_at: datetime, salt: str = "") -> UUID:
    """A stable id for the episode of ``kind`` that began at ``started_at``."""
    name = f"alarm/{subject.tenant_id}/{subject.kind.value}/{subject.subject_id}/{kind.value}/{origin.value}/" \
           f"{started_at.astimezone(UTC).isoformat()}{salt}"
    return uuid5(_NAMESPACE, name)


def _overlaps(episode: AlarmEpisode, condition: Condition) -> bool:
    episode_ends_after_start = episode.ended_at is None or condition.started_at <= episode.ended_at
    condition_ends_after_start = condition.ended_at is None or episode.started_at <= condition.ended_at
    return episode_ends_after_start and condition_ends_after_start


def _match(condition: Condition, known: Sequence[AlarmEpisode], used: set[UUID]) -> AlarmEpisode | None:
    candidates = [e for e in known if e.kind is condition.kind and e.alarm_id not in used and _overlaps(e, condition)]
    # An open episode first; among closed ones the latest, so a reopened condition salts a fresh id.
    return max(candidates, key=lambda e: (e.ended_at is None, e.started_at), default=None)


class _Ledger:
    """The facts of one reconciliation, written as episodes are raised and cleared."""

    def __init__(self, subject: Subject, origin: EpisodeOrigin) -> None:
        self.subject, self.origin = subject, origin
        self.facts: list[AlarmFact] = []

    def raise_(self, condition: Condition, salt: str = "") -> AlarmEpisode:
        episode = AlarmEpisode(alarm_id=alarm_id(self.subject, condition.kind, self.origin, condition.started_at, salt),
                               kind=condition.kind, origin=self.origin, started_at=condition.started_at)
        self.facts.append(AlarmRaisedFact(episode.alarm_id, self.subject, condition))
        return self.clear(episode, condition.ended_at) if condition.ended_at else episode

    def clear(self, episode: AlarmEpisode, at: datetime) -> AlarmEpisode:
        self.facts.append(AlarmClearedFact(episode.alarm_id, episode.kind, self.subject, at,
                                           ClearReason.CONDITION_ENDED))
        return episode.model_copy(update={"ended_at": at})


def reconcile_episodes(known: Sequence[AlarmEpisode], conditions: Iterable[Condition], origin: EpisodeOrigin,
                       subject: Subject, as_of: datetime) -> tuple[tuple[AlarmEpisode, ...], list[AlarmFact]]:
    """The episodes after this evaluation, and the facts that tell consumers what changed."""
    mine = [e for e in known if e.origin is origin]
    kept = [e for e in known if e.origin is not origin]
    ledger, used = _Ledger(subject, origin), set[UUID]()
    for condition in sorted(conditions, key=lambda c: (c.started_at, c.kind.value)):
        match = _match(condition, mine, used)
        if match is None:
            kept.append(ledger.raise_(condition))
            continue
        used.add(match.alarm_id)
        if match.ended_at is None and condition.ended_at is not None:
            kept.append(ledger.clear(match, condition.ended_at))
        elif match.ended_at is not None and condition.ended_at is None:
            # Late data shows the condition went on after it was cleared: a new episode.
            kept += [match, ledger.raise_(condition, salt=f"/after/{match.alarm_id}")]
        else:
            kept.append(match)
    for episode in mine:
        if episode.alarm_id not in used:  # the data no longer shows it (e.g. an estimate was replaced)
            kept.append(ledger.clear(episode, as_of) if episode.ended_at is None else episode)
    return tuple(sorted(kept, key=lambda e: (e.started_at, e.kind.value, str(e.alarm_id)))), ledger.facts
