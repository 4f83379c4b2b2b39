"""The balance state a posting leaves: leaving low for normal is a state too (billing.md "Balance
thresholds": normal -> low -> depleted, and back), so a customer who tops up is warned again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_schemas import new_envelope
from amiflow_schemas.examples import example_payloads
from billing import posting
from billing.core.balance_state import BalanceStatus

AT = datetime(2026, 7, 3, 9, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_a_low_balance_topped_up_is_normal_again_and_the_next_fall_announces_balance_low_again(
        account: Callable[..., Any]) -> None:
    acc = account()  # low amount 20.00, no settled days: the threshold is 20.00
    status = BalanceStatus.NORMAL.value
    announced = []
    for balance in ("15.00", "80.00", "12.00"):  # a charge, a top-up, charges again
        entered, events = posting.assessed("t", acc, status, Decimal(balance), [], AT)
        status = entered.value
        announced.append((status, [e.event_type for e in events]))

    assert announced == [("low", ["BalanceLow"]), ("normal", []), ("low", ["BalanceLow"])]


def test_balance_events_caused_by_a_reading_take_ids_derived_from_it(account: Callable[..., Any]) -> None:
    cause = new_envelope(example_payloads()["ReadingValidated"], event_id=uuid.uuid4(), tenant_id="t", key="WM-1",
                         occurred_at=AT, recorded_at=AT, producer="vee")
    first = posting.balance_events("t", account(), "normal", Decimal("5.00"), [], AT, cause)
    again = posting.balance_events("t", account(), "normal", Decimal("5.00"), [], AT, cause)
    uncaused = posting.balance_events("t", account(), "normal", Decimal("5.00"), [], AT)

    assert [e.event_type for e in first] == ["BalanceLow"]
    assert [e.event_id for e in first] == [e.event_id for e in again]  # a redelivered reading: the same ids
    assert [e.causation_id for e in first] == [cause.event_id]
    assert uncaused[0].event_id != first[0].event_id
    other = posting.balance_events("t", account(account_id="ACC-OTHER"), "normal", Decimal("5.00"), [], AT, cause)
    assert other[0].event_id != first[0].event_id  # one cause moving two accounts: two facts, two ids
