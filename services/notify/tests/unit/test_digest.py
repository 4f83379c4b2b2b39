"""Many operator alarms at once become one digest; the alarms in it are suppressed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.alarms import AlarmSeverity
from amiflow_schemas.examples import example_payloads
from notify.core.model import Audience, Channel, Notification, Recipient, Topic, Urgency
from notify.core.planning import digest, plan, subject_of
from notify.core.subjects import event_context

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=SHANGHAI)
WINDOW = timedelta(minutes=5)
OPERATOR = Recipient("OP-1", Audience.OPERATOR, Channel.SMS, "+8613812345678")
_EXAMPLES = example_payloads()


def _alarm(number: int, recipient: Recipient = OPERATOR, severity: AlarmSeverity = AlarmSeverity.WARNING,
           at: datetime = NOW) -> Notification:
    raised = _EXAMPLES["AlarmRaised"].model_copy(update={
        "alarm_id": UUID(int=number), "subject_id": f"WM-{number:012d}", "severity": severity})
    subject = subject_of(raised, zone=SHANGHAI)
    assert subject is not None
    return plan(subject, [recipient], tenant_id="tenant-demo", cause_event_id=UUID(int=1000 + number),
                now=at, zone=SHANGHAI, context=event_context(raised))[0]


def test_more_alarms_than_the_threshold_become_one_digest() -> None:
    pending = [_alarm(n) for n in range(5)]
    gathered = digest(pending, now=NOW, window=WINDOW, threshold=3)
    assert gathered is not None
    assert gathered.notification.topic is Topic.ALARM_DIGEST
    assert gathered.notification.recipient == OPERATOR
    assert len(gathered.notification.context["alarms"]) == 5
    assert {n.notification_id for n in gathered.included} == {n.notification_id for n in pending}
    assert {n.suppressed for n in gathered.included} == {f"included in digest {gathered.notification.notification_id}"}


def test_up_to_the_threshold_each_alarm_goes_on_its_own() -> None:
    assert digest([_alarm(n) for n in range(3)], now=NOW, window=WINDOW, threshold=3) is None


def test_the_same_alarms_give_the_same_digest() -> None:
    pending = [_alarm(n) for n in range(5)]
    first = digest(pending, now=NOW, window=WINDOW, threshold=3)
    again = digest(list(reversed(pending)), now=NOW + timedelta(seconds=30), window=WINDOW, threshold=3)
    assert first is not None and again is not None
    assert first.notification.notification_id == again.notification.notification_id
    assert first.notification.dedupe_key == again.notification.dedupe_key


def test_critical_alarms_lead_the_digest_and_make_it_critical() -> None:
    pending = [*(_alarm(n) for n in range(4)), _alarm(9, severity=AlarmSeverity.CRITICAL)]
    gathered = digest(pending, now=NOW, window=WINDOW, threshold=3)
    assert gathered is not None
    assert gathered.notification.urgency is Urgency.CRITICAL
    assert gathered.notification.context["alarms"][0]["subject_id"] == "WM-000000000009"
    assert gathered.notification.subject_id == "*"


def test_alarms_not_due_within_the_window_wait_outside_the_digest() -> None:
    later = [_alarm(n, at=NOW + timedelta(hours=1)) for n in range(3)]
    soon = [_alarm(n) for n in range(10, 13)]
    assert digest([*later, *soon], now=NOW, window=WINDOW, threshold=3) is None
    gathered = digest([*later, *soon], now=NOW, window=WINDOW, threshold=2)
    assert gathered is not None
    assert len(gathered.included) == 3


def test_webhooks_and_suppressed_notifications_are_never_digested() -> None:
    hook = Recipient("SUB-1", Audience.INTEGRATOR, Channel.WEBHOOK, "https://integrator.example/hook")
    assert digest([_alarm(n, hook) for n in range(5)], now=NOW, window=WINDOW, threshold=3) is None
    opted_out = [replace(_alarm(n), suppressed="opted out of alarm_raised") for n in range(5)]
    assert digest(opted_out, now=NOW, window=WINDOW, threshold=3) is None


def test_a_digest_is_for_one_recipient_address() -> None:
    other = Recipient("OP-2", Audience.OPERATOR, Channel.SMS, "+8613912345678")
    with pytest.raises(ValueError, match="one recipient"):
        digest([*(_alarm(n) for n in range(3)), _alarm(7, other)], now=NOW, window=WINDOW, threshold=3)
