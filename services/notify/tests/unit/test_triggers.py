"""Which events call for a notification, and to whom."""

from __future__ import annotations

import pytest
from amiflow_schemas.examples import example_payloads
from notify.core.triggers import Audience, Trigger, trigger_for

_EXAMPLES = example_payloads()


@pytest.mark.parametrize("event_type", ["BalanceLow", "BalanceDepleted", "BalanceRestored", "PaymentReceived"])
def test_balance_and_payment_events_tell_the_customer_of_the_account(event_type: str) -> None:
    assert trigger_for(_EXAMPLES[event_type]) == Trigger(Audience.CUSTOMER, "ACC-0001")


@pytest.mark.parametrize("event_type", ["AlarmRaised", "AlarmCleared"])
def test_alarms_tell_the_operator_about_their_subject(event_type: str) -> None:
    assert trigger_for(_EXAMPLES[event_type]) == Trigger(Audience.OPERATOR, "WM-000012345678")


def test_a_failed_command_tells_the_operator_about_the_device() -> None:
    assert trigger_for(_EXAMPLES["CommandFailed"]) == Trigger(Audience.OPERATOR, "EM-123456789012")


def test_the_subject_comes_from_the_event_not_a_constant() -> None:
    payment = _EXAMPLES["PaymentReceived"].model_copy(update={"account_id": "ACC-0042"})
    assert trigger_for(payment) == Trigger(Audience.CUSTOMER, "ACC-0042")


def test_a_validated_reading_calls_for_no_notification() -> None:
    assert trigger_for(_EXAMPLES["ReadingValidated"]) is None


def test_the_worker_passes_over_only_events_that_call_for_nothing() -> None:
    # The worker reads only NOTIFIED_EVENTS (the rest of its topics unread): every other known event must be
    # one the handler would do nothing with — no trigger, no subject, no balance state.
    from zoneinfo import ZoneInfo

    from notify.app import BALANCE_EVENTS
    from notify.core.subjects import subject_of
    from notify.core.triggers import NOTIFIED_EVENTS

    acted_on = {name for name, payload in _EXAMPLES.items()
                if trigger_for(payload) is not None or subject_of(payload, zone=ZoneInfo("Asia/Shanghai")) is not None
                or isinstance(payload, BALANCE_EVENTS)}
    assert acted_on == set(NOTIFIED_EVENTS)
