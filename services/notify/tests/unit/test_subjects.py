"""What each event calls for telling, to whom, how urgently, and under which dedupe key."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.alarms import AlarmSeverity
from amiflow_schemas.events.commands import CommandOutcome
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.payload import EventPayload
from notify.core.model import Audience, Topic, Urgency
from notify.core.planning import subject_of
from notify.core.subjects import event_context

SHANGHAI = ZoneInfo("Asia/Shanghai")
_EXAMPLES = example_payloads()


def _low_at(instant: datetime, account_id: str = "ACC-0001") -> EventPayload:
    return _EXAMPLES["BalanceLow"].model_copy(update={"entered_at": instant, "account_id": account_id})


def _key(payload: EventPayload) -> str:
    subject = subject_of(payload, zone=SHANGHAI)
    assert subject is not None
    return subject.dedupe_key


def test_balance_low_twice_on_the_same_local_day_has_one_key_though_the_utc_days_differ() -> None:
    just_after_local_midnight = datetime(2026, 6, 30, 16, 30, tzinfo=UTC)  # 07-01 00:30 in Shanghai
    late_evening = datetime(2026, 7, 1, 15, 59, tzinfo=UTC)  # 07-01 23:59 in Shanghai
    assert _key(_low_at(just_after_local_midnight)) == _key(_low_at(late_evening))
    assert _key(_low_at(late_evening)) == "low_balance:ACC-0001:2026-07-01"


def test_balance_low_after_local_midnight_is_a_new_day_and_a_new_key() -> None:
    before = datetime(2026, 7, 1, 15, 59, tzinfo=UTC)  # 07-01 23:59 in Shanghai
    after = datetime(2026, 7, 1, 16, 1, tzinfo=UTC)  # 07-02 00:01 in Shanghai, still 07-01 in UTC
    assert _key(_low_at(before)) != _key(_low_at(after))
    assert _key(_low_at(after)) == "low_balance:ACC-0001:2026-07-02"


def test_balance_low_keys_are_per_account() -> None:
    at = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
    assert _key(_low_at(at, "ACC-0001")) != _key(_low_at(at, "ACC-0002"))


def test_a_low_balance_is_routine_and_for_the_customer_and_integrators() -> None:
    subject = subject_of(_EXAMPLES["BalanceLow"], zone=SHANGHAI)
    assert subject is not None
    assert (subject.topic, subject.urgency) == (Topic.BALANCE_LOW, Urgency.ROUTINE)
    assert subject.audiences == {Audience.CUSTOMER, Audience.INTEGRATOR}
    assert (subject.subject_id, subject.account_id) == ("ACC-0001", "ACC-0001")


def test_a_depleted_balance_is_critical_and_one_per_depletion() -> None:
    depleted = _EXAMPLES["BalanceDepleted"]
    subject = subject_of(depleted, zone=SHANGHAI)
    assert subject is not None
    assert (subject.topic, subject.urgency) == (Topic.BALANCE_DEPLETED, Urgency.CRITICAL)
    same_instant_other_offset = depleted.model_copy(update={"depleted_at": depleted.depleted_at.astimezone(UTC)})
    assert _key(same_instant_other_offset) == subject.dedupe_key
    later = depleted.model_copy(update={"depleted_at": datetime(2026, 7, 9, tzinfo=UTC)})
    assert _key(later) != subject.dedupe_key


def test_a_restored_balance_is_routine_news_for_the_customer() -> None:
    subject = subject_of(_EXAMPLES["BalanceRestored"], zone=SHANGHAI)
    assert subject is not None
    assert (subject.topic, subject.urgency) == (Topic.BALANCE_RESTORED, Urgency.ROUTINE)


def test_one_receipt_per_provider_transaction() -> None:
    payment = _EXAMPLES["PaymentReceived"]
    assert _key(payment) == "payment:wechat_pay:4200001234202607011234567890"
    assert _key(payment.model_copy(update={"paid_at": datetime(2026, 7, 2, tzinfo=UTC)})) == _key(payment)
    assert _key(payment.model_copy(update={"provider_transaction_id": "4200009"})) != _key(payment)


def test_an_alarm_is_told_once_per_episode_and_its_clearing_once_more() -> None:
    raised, cleared = _EXAMPLES["AlarmRaised"], _EXAMPLES["AlarmCleared"]
    assert _key(raised) == f"alarm:{raised.alarm_id}:raised"
    assert _key(raised.model_copy(update={"description": "seen again"})) == _key(raised)
    assert _key(cleared) == f"alarm:{raised.alarm_id}:cleared"
    subject = subject_of(raised, zone=SHANGHAI)
    assert subject is not None
    assert subject.audiences == {Audience.OPERATOR, Audience.INTEGRATOR}
    assert (subject.subject_id, subject.account_id) == ("WM-000012345678", None)


@pytest.mark.parametrize(("severity", "urgency"), [(AlarmSeverity.INFO, Urgency.ROUTINE),
                                                   (AlarmSeverity.WARNING, Urgency.ROUTINE),
                                                   (AlarmSeverity.CRITICAL, Urgency.CRITICAL)])
def test_only_critical_alarms_are_critical(severity: AlarmSeverity, urgency: Urgency) -> None:
    subject = subject_of(_EXAMPLES["AlarmRaised"].model_copy(update={"severity": severity}), zone=SHANGHAI)
    assert subject is not None
    assert subject.urgency is urgency


@pytest.mark.parametrize("outcome", list(CommandOutcome))
def test_an_escalated_command_is_a_critical_operator_alarm_once_per_outcome(outcome: CommandOutcome) -> None:
    escalated = _EXAMPLES["CommandEscalated"].model_copy(update={"outcome": outcome})
    subject = subject_of(escalated, zone=SHANGHAI)
    assert subject is not None
    assert (subject.topic, subject.urgency) == (Topic.COMMAND_FAILED, Urgency.CRITICAL)
    assert subject.dedupe_key == f"command:{escalated.command_id}:{outcome.value}"
    assert (subject.subject_id, subject.account_id) == ("EM-123456789012", "ACC-0001")


@pytest.mark.parametrize("event_type", ["CommandFailed", "CommandExpired"])
def test_raw_command_failures_are_left_to_their_escalation(event_type: str) -> None:
    assert subject_of(_EXAMPLES[event_type], zone=SHANGHAI) is None


@pytest.mark.parametrize("event_type", ["ReadingValidated", "ChargeApplied", "AlarmAcknowledged", "NotificationSent"])
def test_events_nobody_needs_to_hear_about_have_no_subject(event_type: str) -> None:
    assert subject_of(_EXAMPLES[event_type], zone=SHANGHAI) is None


def test_the_event_context_is_plain_json() -> None:
    context = event_context(_EXAMPLES["BalanceLow"])
    assert context == {"event_type": "BalanceLow", "event": {
        "account_id": "ACC-0001", "balance": "22.00", "threshold": "24.00", "average_daily_cost": "8.00",
        "currency": "CNY", "entered_at": "2026-07-01T12:00:00+08:00"}}
