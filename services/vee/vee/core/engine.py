"""VEE's entry points: each takes the meter's state and an input, and returns the new state and the facts.

Every entry point that changes data re-derives the series from the raw reads and edits, publishes
the points that differ from what consumers have (new slots as version 1, changed ones as
corrections), reports the local buckets whose totals changed, and reconciles alarm episodes. The
lead maps the facts to ReadingValidated / ReadingCorrected / AlarmRaised / AlarmCleared (see
vee.core.events) and persists the state with them in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from amiflow_schemas.events.alarms import AlarmSubject
from amiflow_schemas.events.readings import ValidationStatus

from vee.core.aggregation import BucketChange, aggregate, view_changes
from vee.core.context import MeterContext
from vee.core.derive import Derivation, derive_series
from vee.core.device_alarms import DeviceStatus, device_conditions, silence_conditions
from vee.core.episodes import AlarmFact, Subject, reconcile_episodes
from vee.core.grid import Granularity
from vee.core.model import Check, EpisodeOrigin, ManualEdit, MeterSeries, PublishedPoint, RawRead, SeriesPoint
from vee.core.placement import Rejection, place_read
from vee.core.review_alarms import series_conditions
from vee.core.rules import RuleSet
from vee.core.versions import PointPublished, reconcile_points


@dataclass(frozen=True, slots=True)
class ReadRejected:
    """A read refused outright: it fits no device of the series (V4) or came for a settled period."""

    source_event_id: UUID
    measured_at: datetime
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True)
class EditRejected:
    """An edit that failed validation again (V7 against its neighbours): nothing was saved."""

    edit: ManualEdit
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The state to keep and the facts to emit, all from one input."""

    state: MeterSeries
    points: tuple[PointPublished, ...] = ()
    alarms: tuple[AlarmFact, ...] = ()
    buckets: tuple[BucketChange, ...] = ()
    rejected: tuple[ReadRejected, ...] = ()
    edit_rejected: EditRejected | None = None
    revised: tuple[PublishedPoint, ...] = ()  # stored points whose review flags changed, nothing to publish


def apply_reading(state: MeterSeries, context: MeterContext, rules: RuleSet, read: RawRead,
                  now: datetime) -> Outcome:
    """Merge one received reading, in whatever order it arrives."""
    return apply_readings(state, context, rules, (read,), now)


def apply_readings(state: MeterSeries, context: MeterContext, rules: RuleSet, reads: Sequence[RawRead],
                   now: datetime) -> Outcome:
    """Merge a batch of readings (a store-and-forward backlog, a Faust batch) with one derivation."""
    fresh = {r.source_event_id: r for r in reads if not state.knows(r)}
    if not fresh:
        return Outcome(state)  # a redelivery changes nothing
    timeline = rules.timeline(context.groups)
    rejected, after, slots = [], state, []  # slots: where the reads kept were placed
    for read in fresh.values():
        placed = place_read(read, context, timeline.parameters)
        if isinstance(placed, Rejection):  # V4 terminates: the read fits no device of this series
            rejected.append(ReadRejected(read.source_event_id, read.measured_at, placed.checks))
        elif state.settled_before is not None and placed.at < state.settled_before:
            rejected.append(ReadRejected(read.source_event_id, read.measured_at, (Check.SETTLED,)))
        else:
            after = after.with_read(read)
            slots.append(placed.at)
    heard = max([now, *(r.received_at for r in fresh.values() if r.received_at)])
    after = after.model_copy(update={"last_heard_at": max(heard, state.last_heard_at or heard)})
    outcome = _rederive(after, context, rules, now, changed_from=min(slots)) if slots else Outcome(after)
    silence = check_silence(outcome.state, context, rules, now)
    return replace(outcome, state=silence.state, alarms=(*outcome.alarms, *silence.alarms), rejected=tuple(rejected))


def estimate_silent(state: MeterSeries, context: MeterContext, rules: RuleSet, until: datetime,
                    now: datetime) -> Outcome:
    """The timer: estimate up to ``until`` once the meter has been silent past the wait (E1 → E4/E5/E7)."""
    last_actual = max((p.point.at for p in state.published if p.point.status in (
        ValidationStatus.ACTUAL, ValidationStatus.EDITED)), default=None)
    silence = check_silence(state, context, rules, now)
    wait = rules.timeline(context.groups).parameters(now).estimation_wait
    if last_actual is None or now - last_actual < wait or (state.estimated_until or until) > until:
        return silence
    outcome = _rederive(silence.state.model_copy(update={"estimated_until": until}), context, rules, now)
    return replace(outcome, alarms=(*silence.alarms, *outcome.alarms))


def apply_edit(state: MeterSeries, context: MeterContext, rules: RuleSet, edit: ManualEdit,
               now: datetime) -> Outcome:
    """Save an operator's edit as a new version, after validating it again against its neighbours."""
    if any(e.edit_id == edit.edit_id for e in state.edits):
        return Outcome(state)
    slot = context.grid.nearest(edit.measured_at)
    if state.settled_before is not None and slot < state.settled_before:
        return Outcome(state, edit_rejected=EditRejected(edit, (Check.SETTLED,)))
    after = state.model_copy(update={"edits": (*state.edits, edit)})
    derivation = derive_series(after, context, rules)
    point = next((p for p in derivation.points if p.at == slot), None)
    broken = _newly_failed(state, derivation.points, slot)
    if edit.value is not None and (point is None or point.status is not ValidationStatus.EDITED or broken):
        checks = (point.checks if point else ()) + tuple(c for p in broken for c in p.checks)
        return Outcome(state, edit_rejected=EditRejected(edit, tuple(dict.fromkeys(checks)) or (Check.NEGATIVE,)))
    return _rederive(after, context, rules, now, derivation)


_DOUBTS = frozenset({Check.NEGATIVE, Check.REVERSE_FLOW})


def _newly_failed(state: MeterSeries, points: Sequence[SeriesPoint], edited: datetime) -> list[SeriesPoint]:
    # An edit the next actual read contradicts (it would now fail or run back) is refused.
    clean = {p.point.at for p in state.published if p.point.at != edited
             and p.point.status is ValidationStatus.ACTUAL and not _DOUBTS & set(p.point.checks)}
    return [p for p in points if p.at in clean and (p.status is not ValidationStatus.ACTUAL
                                                     or _DOUBTS & set(p.checks))]


def apply_device_status(state: MeterSeries, context: MeterContext, rules: RuleSet, status: DeviceStatus,
                        now: datetime) -> Outcome:
    """Raise or clear device alarms from a status report; an older report than the last is ignored."""
    if state.last_status_at is not None and status.reported_at < state.last_status_at:
        return Outcome(state)
    timeline = rules.timeline(context.groups)
    episodes, facts = reconcile_episodes(state.episodes, device_conditions(status, timeline), EpisodeOrigin.DEVICE,
                                         _subject(context), status.reported_at)
    after = state.model_copy(update={"episodes": episodes, "last_status_at": status.reported_at,
                                     "last_heard_at": max(now, state.last_heard_at or now)})
    silence = check_silence(after, context, rules, now)
    return Outcome(silence.state, alarms=(*facts, *silence.alarms))


def check_silence(state: MeterSeries, context: MeterContext, rules: RuleSet, now: datetime) -> Outcome:
    """Raise "no communication" once nothing was heard for the limit; clear it when something is."""
    timeline = rules.timeline(context.groups)
    episodes, facts = reconcile_episodes(state.episodes, silence_conditions(state.last_heard_at, now, timeline),
                                         EpisodeOrigin.SILENCE, _subject(context), state.last_heard_at or now)
    return Outcome(state.model_copy(update={"episodes": episodes}), alarms=tuple(facts))


def prune(state: MeterSeries, context: MeterContext, rules: RuleSet, before: datetime) -> MeterSeries:
    """Settle the slots before ``before``: they are no longer re-derived or re-published (V15).

    Keeps the history later slots are derived from (ADU window, like-day lookback) and the last read
    before it, so the first kept interval still has its opening read. Bounds the state and the work
    per reading; the published history itself lives in the event log and the lead's store.
    """
    parameters = rules.timeline(context.groups).parameters(before)
    keep_from = before - max(parameters.adu_window, parameters.like_day_lookback)
    older = [r for r in state.reads if r.measured_at < keep_from]
    reads = tuple(older[-1:]) + tuple(r for r in state.reads if r.measured_at >= keep_from)
    settled = max(before, state.settled_before or before)
    return state.model_copy(update={
        "reads": reads, "edits": tuple(e for e in state.edits if e.measured_at >= keep_from),
        "published": tuple(p for p in state.published if p.point.at >= settled),
        "episodes": tuple(e for e in state.episodes if e.ended_at is None or e.ended_at >= keep_from),
        # Derived from fewer reads, the first kept slots may come out otherwise: the next derivation is whole.
        "settled_before": settled, "derived_with": None})


def _subject(context: MeterContext) -> Subject:
    return Subject(context.tenant_id, AlarmSubject.METER, context.series_id)


# Raise it with any change to the core that derives a kept series otherwise: each series is then derived
# whole once, so its published points before a new read are again what this code makes of them.
DERIVATION_REVISION = 1


def fingerprint(context: MeterContext, rules: RuleSet) -> str:
    """What a series was derived with: a registry change, a new rule version or a new derivation makes it
    differ."""
    digest = hashlib.blake2b(f"{DERIVATION_REVISION}".encode(), digest_size=16)
    digest.update(context.model_dump_json().encode())
    digest.update(rules.model_dump_json().encode())
    return digest.hexdigest()


def _rederive(after: MeterSeries, context: MeterContext, rules: RuleSet, now: datetime,
              derivation: Derivation | None = None, changed_from: datetime | None = None) -> Outcome:
    """Derive the series again, publish what changed, report changed buckets and reconcile alarms.

    ``changed_from``: only reads placed from that slot on were added. The published points then stand for
    the earlier slots, if the series was last derived with the same context and rules.
    """
    timeline = rules.timeline(context.groups)
    derived_with = fingerprint(context, rules)
    if after.derived_with != derived_with:
        changed_from = None
    derivation = derivation or derive_series(after, context, rules, changed_from)
    before_view = tuple(p.point for p in after.published)
    reconciled = reconcile_points(after.published, derivation.points, context.tenant_id, context.series_id,
                                  timeline, after.settled_before)
    view = tuple(p.point for p in reconciled.view)
    # The alarms read the whole hourly and daily series; the changes need only the buckets that moved.
    hourly, daily = aggregate(view, Granularity.HOUR, context.zone), aggregate(view, Granularity.DAY, context.zone)
    made = {Granularity.HOUR: hourly, Granularity.DAY: daily}
    changes = tuple(c for g in Granularity for c in view_changes(before_view, view, g, context.zone, made.get(g)))
    conditions = series_conditions(view, hourly, daily, context, timeline)
    episodes, alarms = reconcile_episodes(after.episodes, conditions, EpisodeOrigin.SERIES, _subject(context),
                                          view[-1].at if view else now)
    state = after.model_copy(update={"published": reconciled.view, "episodes": episodes,
                                     "derived_with": derived_with})
    return Outcome(state, reconciled.published, tuple(alarms), changes, revised=reconciled.revised)
