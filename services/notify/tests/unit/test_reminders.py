"""The daily low-balance reminder: one per local day from the morning, while the account stays low."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.examples import example_payloads
from notify.core.model import Audience, BalanceStatus, Topic, Urgency
from notify.core.planning import reminder_due, subject_of
from notify.core.reminders import balance_status_after, reminder_cause_id, reminder_subject

SHANGHAI = ZoneInfo("Asia/Shanghai")
MORNING = time(9)
_EXAMPLES = example_payloads()


def _local(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=SHANGHAI)


def _due(state: BalanceStatus, reminded_on: date | None, now: datetime, since: datetime | None = None) -> bool:
    return reminder_due(state, reminded_on, now, SHANGHAI, MORNING, state_since=since)


@pytest.mark.parametrize("state", [BalanceStatus.LOW, BalanceStatus.DEPLETED])
def test_a_low_or_depleted_account_is_reminded_from_the_morning_on(state: BalanceStatus) -> None:
    assert _due(state, date(2026, 7, 1), _local(9))
    assert _due(state, None, _local(15))


def test_no_reminder_before_the_morning_hour() -> None:
    assert not _due(BalanceStatus.LOW, date(2026, 7, 1), _local(8, 59))


def test_one_reminder_per_local_day() -> None:
    assert not _due(BalanceStatus.LOW, date(2026, 7, 2), _local(10))
    assert _due(BalanceStatus.LOW, date(2026, 7, 2), _local(9, day=3))


def test_a_normal_account_is_not_reminded() -> None:
    assert not _due(BalanceStatus.NORMAL, None, _local(10))


def test_the_day_the_account_became_low_is_not_reminded_again() -> None:
    assert not _due(BalanceStatus.LOW, None, _local(10), since=_local(7))
    assert _due(BalanceStatus.LOW, None, _local(10), since=_local(23, day=1))


def test_the_local_day_is_the_tenants_not_utcs() -> None:
    # 00:30 on 07-03 in Shanghai is still 07-02 in UTC: a reminder on 07-02 does not cover it,
    # but it is before the morning hour.
    assert not _due(BalanceStatus.LOW, date(2026, 7, 2), _local(0, 30, day=3))
    assert reminder_due(BalanceStatus.LOW, date(2026, 7, 2), _local(0, 30, day=3), SHANGHAI, time(0))


def test_the_reminder_shares_the_key_of_that_days_balance_low() -> None:
    low = _EXAMPLES["BalanceLow"]  # entered 2026-07-01 12:00 in Shanghai
    told = subject_of(low, zone=SHANGHAI)
    assert told is not None
    same_day = reminder_subject(low, _local(9, day=1), SHANGHAI)
    next_day = reminder_subject(low, _local(9, day=2), SHANGHAI)
    assert same_day.dedupe_key == told.dedupe_key
    assert next_day.dedupe_key == "low_balance:ACC-0001:2026-07-02"
    # Integrators get it too when their webhook subscribes to the topic.
    assert (next_day.topic, next_day.urgency, next_day.audiences) == (
        Topic.LOW_BALANCE_REMINDER, Urgency.ROUTINE, {Audience.CUSTOMER, Audience.INTEGRATOR})


def test_a_days_reminder_has_one_cause_id() -> None:
    day = date(2026, 7, 2)
    assert reminder_cause_id("tenant-demo", "ACC-0001", day) == reminder_cause_id("tenant-demo", "ACC-0001", day)
    assert reminder_cause_id("tenant-demo", "ACC-0001", day) != reminder_cause_id("tenant-demo", "ACC-0001",
                                                                                   date(2026, 7, 3))
    assert reminder_cause_id("tenant-demo", "ACC-0001", day) != reminder_cause_id("tenant-demo", "ACC-0002", day)


def test_the_balance_state_follows_billings_events() -> None:
    state = BalanceStatus.NORMAL
    for event_type, expected in [("BalanceLow", BalanceStatus.LOW), ("BalanceDepleted", BalanceStatus.DEPLETED),
                                 ("PaymentReceived", BalanceStatus.DEPLETED),  # only a restore ends depletion
                                 ("BalanceRestored", BalanceStatus.NORMAL), ("BalanceLow", BalanceStatus.LOW),
                                 ("ReadingValidated", BalanceStatus.LOW)]:
        state = balance_status_after(state, _EXAMPLES[event_type])
        assert state is expected, event_type


def test_a_payment_on_a_low_account_ends_the_reminders() -> None:
    assert balance_status_after(BalanceStatus.LOW, _EXAMPLES["PaymentReceived"]) is BalanceStatus.NORMAL
