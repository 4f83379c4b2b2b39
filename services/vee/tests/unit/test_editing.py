"""Manual edits (vee.md §3): versions kept, validated again, and ranked above later automatic data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.readings import CorrectionReason, ValidationStatus
from vee.core.engine import prune
from vee.core.grid import Granularity
from vee.core.model import Check

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _three_hours(m):
    for hour, value in enumerate(["10.0", "11.0", "12.0", "13.0"]):
        m.read(T0 + hour * H, value)


def test_an_edit_is_a_new_version_with_who_and_why_and_the_original_is_kept(meter):
    m = meter()
    _three_hours(m)
    first = m.edit(T0 + H, "11.4", edited_at=T0 + 5 * H)
    [edited, following] = first.points
    assert (edited.version, edited.reason) == (2, CorrectionReason.MANUAL_EDIT)
    assert edited.point.status is ValidationStatus.EDITED and edited.point.consumption == Decimal("1.4")
    assert (edited.point.edit.edited_by, edited.point.edit.version) == ("op-1", 1)
    assert (following.point.at, following.point.consumption) == (T0 + 2 * H, Decimal("0.6"))
    hourly = {c.start: c.delta for c in first.buckets if c.granularity is Granularity.HOUR}
    assert hourly == {T0: Decimal("0.4"), T0 + H: Decimal("-0.4")}
    second = m.edit(T0 + H, "11.2", edited_at=T0 + 6 * H)
    assert second.points[0].version == 3 and m.point(T0 + H).edit.version == 2
    assert len(m.state.edits) == 2 and any(r.registers[0].value == Decimal("11.0") for r in m.state.reads)


def test_a_delete_marks_the_value_deleted_and_the_slot_is_estimated_again(meter):
    m = meter()
    _three_hours(m)
    m.edit(T0 + H, None, edited_at=T0 + 5 * H)
    deleted = m.point(T0 + H)
    assert deleted.status is ValidationStatus.ESTIMATED and Check.DELETED_BY_EDIT in deleted.checks
    assert m.register(T0 + H) == Decimal("11")


def test_an_edit_that_fails_validation_again_is_rejected_and_nothing_is_saved(meter):
    m = meter(resolution="0.1")
    _three_hours(m)
    before = m.state
    below = m.edit(T0 + 2 * H, "10.5", edited_at=T0 + 5 * H)  # below the 01:00 read
    assert below.edit_rejected is not None and Check.NEGATIVE in below.edit_rejected.checks
    assert m.state == before and below.points == ()
    above = m.edit(T0 + H, "12.5", edited_at=T0 + 5 * H)  # would make the 02:00 actual go backwards
    assert above.edit_rejected is not None and m.state == before


def test_later_automatic_data_wins_over_an_edit_when_the_tenant_allows_it(meter, rules):
    m = meter(rules=rules(protect_manual_edits=False))
    _three_hours(m)
    m.edit(T0 + 4 * H, "14.0", edited_at=T0 + 5 * H)
    late = m.read(T0 + 4 * H, "14.2", received_at=T0 + 6 * H)
    [actual] = late.points
    assert (actual.point.status, actual.reason) == (ValidationStatus.ACTUAL, CorrectionReason.MANUAL_EDIT)
    stale = meter(rules=rules(protect_manual_edits=False))
    _three_hours(stale)
    stale.edit(T0 + 4 * H, "14.0", edited_at=T0 + 5 * H)
    stale.read(T0 + 4 * H, "14.2", received_at=T0 + 4 * H)  # reached the head-end before the edit
    assert stale.point(T0 + 4 * H).status is ValidationStatus.EDITED


def test_replaying_an_edit_changes_nothing(meter):
    m = meter()
    _three_hours(m)
    edit_id = m.edit(T0 + H, "11.4", edited_at=T0 + 5 * H).points[0].point.edit.edit_id
    again = m.edit(T0 + H, "11.4", edited_at=T0 + 5 * H, edit_id=edit_id)
    assert again.points == () and len(m.state.edits) == 1


def test_an_edit_of_a_settled_period_is_refused(meter):
    m = meter(D)
    for day in range(70):
        m.read(T0 + day * D, Decimal(day))
    m.state = prune(m.state, m.context, m.rules, T0 + 60 * D)
    refused = m.edit(T0 + 10 * D, "10.5", edited_at=T0 + 80 * D)
    assert refused.edit_rejected.checks == (Check.SETTLED,)
