"""The event payloads VEE's facts become: ReadingValidated / ReadingCorrected, AlarmRaised / AlarmCleared.

Pure mapping, no envelope: the handler wraps them with ids, keys and times. A point that is not
billable (failed, missing) carries no consumption in its event, as the schema requires.
"""

from __future__ import annotations

from amiflow_schemas.events.alarms import AlarmCleared, AlarmRaised
from amiflow_schemas.events.readings import ReadingCorrected, ReadingEdit, ReadingValidated
from amiflow_schemas.primitives import Utility

from vee.core.context import MeterContext
from vee.core.episodes import AlarmClearedFact, AlarmFact
from vee.core.versions import PointPublished


def reading_event(fact: PointPublished, context: MeterContext) -> ReadingValidated | ReadingCorrected:
    """Version 1 of a slot is a ReadingValidated; every later version a ReadingCorrected."""
    point = fact.point
    edit = point.edit
    fields = {
        "meter_id": point.meter_id, "utility": context.utility, "measured_at": point.at,
        "registers": point.registers,
        "consumption": point.consumption if point.billable else None,
        "consumption_unit": context.unit if point.billable else None,
        "previous_measured_at": point.previous_at, "status": point.status,
        "estimation_method": point.method,
        # A slot VEE filled without any read (missing, never estimated) points at its own publication.
        "source_event_id": point.source_event_id or fact.publication_id,
        "register_consumption": point.register_consumption or None,
        "edit": ReadingEdit(edited_by=edit.edited_by, reason_code=edit.reason_code, comment=edit.comment)
        if edit else None,
    }
    if fact.version == 1 or fact.supersedes is None or fact.reason is None:
        return ReadingValidated.model_validate(fields)
    return ReadingCorrected.model_validate({**fields, "reading_version": fact.version,
                                            "supersedes_event_id": fact.supersedes,
                                            "correction_reason": fact.reason})


def alarm_event(fact: AlarmFact, utility: Utility) -> AlarmRaised | AlarmCleared:
    """The AlarmRaised or AlarmCleared event of an alarm fact."""
    if isinstance(fact, AlarmClearedFact):
        return AlarmCleared(alarm_id=fact.alarm_id, alarm_type=fact.kind, subject=fact.subject.kind,
                            subject_id=fact.subject.subject_id, cleared_at=fact.cleared_at, reason=fact.reason,
                            cleared_by=None)
    condition = fact.condition
    window = condition.window if condition.window and condition.window[0] < condition.window[1] else None
    has_value = condition.observed is not None or condition.threshold is not None
    return AlarmRaised(
        alarm_id=fact.alarm_id, alarm_type=condition.kind, severity=condition.severity, subject=fact.subject.kind,
        subject_id=fact.subject.subject_id, utility=utility, rule_id=condition.rule_id,
        detected_at=condition.detected_at, window_start=window[0] if window else None,
        window_end=window[1] if window else None, observed_value=condition.observed,
        threshold_value=condition.threshold, value_unit=condition.unit if has_value else None,
        description=condition.description)
