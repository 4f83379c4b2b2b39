"""Accounts as folds of their events; move-out refunds and closes, room change moves meters and money."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.accounts import (
    AccountCloseReason,
    CustomerKind,
    LinkReason,
    MeterLinkedToAccount,
    MeterUnlinkedFromAccount,
)
from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    ChargeApplied,
    ChargeKind,
    ChargeLine,
    RefundReason,
)
from amiflow_schemas.primitives import Unit, Utility
from billing.core import accounts
from billing.core.accounts import AccountError, AccountStatus
from billing.core.ledger import LedgerEntry, balance
from billing.core.moves import change_room, move_out

SHANGHAI = ZoneInfo("Asia/Shanghai")
MOVE = datetime(2026, 7, 15, 16, 0, tzinfo=SHANGHAI)
Builder = Callable[..., Any]


def _final_reading_charge(amount: str) -> LedgerEntry:
    charge = ChargeApplied(
        account_id="ACC-1", kind=ChargeKind.CONSUMPTION, meter_id="WM-1", utility=Utility.WATER,
        reading_event_id=UUID(int=7), period_start=MOVE - timedelta(days=1), period_end=MOVE - timedelta(hours=1),
        quantity=Decimal("2"), quantity_unit=Unit.M3,
        lines=(ChargeLine(tariff_version_id="v", tier=1, register=None, quantity=Decimal("2"),
                          unit_price=Decimal(amount) / 2, cost=Decimal(amount)),),
        amount=Decimal(amount), currency="CNY", tier_period_cost=Decimal(amount))
    return LedgerEntry(UUID(int=8), MOVE - timedelta(minutes=30), charge)


def test_move_out_posts_the_days_fee_then_refunds_what_is_left_and_closes(account: Builder, tariff: Builder) -> None:
    acc = account()

    out = move_out(acc, {"water": tariff(fixed="0.50")}, Decimal("30.00"), [_final_reading_charge("10.00")], MOVE)

    assert out.refund is not None
    assert (out.refund.amount, out.refund.reason) == (Decimal("19.50"), RefundReason.MOVE_OUT)
    assert [(u.meter_id, u.reason) for u in out.unlinked] == [("WM-1", LinkReason.MOVE_OUT)]
    assert (out.closed.final_balance, out.closed.reason) == (Decimal("0.00"), AccountCloseReason.MOVE_OUT)
    assert out.settlement.closing_balance == 0
    assert out.settlement.adjustments_total == Decimal("-19.50")
    closed = acc
    for event in (*out.unlinked, out.closed):
        closed = accounts.evolve(closed, event)
    assert closed.status is AccountStatus.CLOSED and closed.meters_at(MOVE) == ()


def test_move_out_with_arrears_refunds_nothing_and_keeps_the_debt_on_the_closed_account(
        account: Builder, tariff: Builder) -> None:
    out = move_out(account(), {"water": tariff()}, Decimal("5.00"), [_final_reading_charge("8.00")], MOVE)

    assert out.refund is None
    assert out.closed.final_balance == Decimal("-3.00") == out.settlement.closing_balance


def test_a_room_change_moves_meters_and_the_balance_with_each_side_naming_the_other(account: Builder) -> None:
    source = account("ACC-1", meters=[("WM-1", Utility.WATER, "water"), ("EM-1", Utility.ELECTRICITY, "power")])
    target = account("ACC-2", meters=[])

    change = change_room(source, target, ["WM-1"], Decimal("42.00"), MOVE)

    unlinked, debit = change.source_events
    linked, credit = change.target_events
    assert isinstance(debit, AdjustmentPosted) and isinstance(credit, AdjustmentPosted)
    assert (debit.amount, debit.counterpart_account_id) == (Decimal("42.00"), "ACC-2")
    assert (credit.amount, credit.counterpart_account_id) == (Decimal("-42.00"), "ACC-1")
    assert balance([debit]) == Decimal("-42.00") and balance([credit]) == Decimal("42.00")
    assert isinstance(unlinked, MeterUnlinkedFromAccount) and isinstance(linked, MeterLinkedToAccount)
    assert (unlinked.meter_id, unlinked.next_account_id, linked.previous_account_id) == ("WM-1", "ACC-2", "ACC-1")
    moved = accounts.evolve(target, linked)
    assert [(m.meter_id, m.tariff_id) for m in moved.meters_at(MOVE)] == [("WM-1", "water")]


def test_a_room_change_refuses_a_meter_the_source_does_not_pay_for(account: Builder) -> None:
    with pytest.raises(AccountError, match="not every meter"):
        change_room(account("ACC-1"), account("ACC-2", meters=[]), ["EM-9"], Decimal(0), MOVE)


def test_a_meter_cannot_be_linked_twice_and_a_closed_account_decides_nothing(account: Builder) -> None:
    acc = account()
    with pytest.raises(AccountError, match="already linked"):
        accounts.link_meter(acc, "WM-1", Utility.WATER, "water", MOVE, LinkReason.OPERATOR)
    with pytest.raises(AccountError, match="unlink them first"):
        accounts.close_account(acc, AccountCloseReason.OPERATOR, Decimal(0), MOVE)

    emptied = accounts.evolve(acc, accounts.unlink_meter(acc, "WM-1", MOVE, LinkReason.OPERATOR))
    closed = accounts.evolve(emptied, accounts.close_account(emptied, AccountCloseReason.OPERATOR, Decimal(0), MOVE))

    with pytest.raises(AccountError, match="is closed"):
        accounts.link_meter(closed, "WM-2", Utility.WATER, "water", MOVE, LinkReason.CONNECTED)


def test_an_unknown_time_zone_is_refused_when_opening(account: Builder) -> None:
    with pytest.raises(AccountError, match="unknown time zone"):
        accounts.open_account("ACC-9", "C-9", CustomerKind.HOUSEHOLD, "CNY", "Mars/Olympus",
                              MOVE.date(), account().settings, MOVE)


def test_a_relinked_meter_keeps_its_earlier_link_as_history(account: Builder) -> None:
    acc = account()
    later = MOVE + timedelta(days=1)
    acc = accounts.evolve(acc, accounts.unlink_meter(acc, "WM-1", MOVE, LinkReason.OPERATOR))
    acc = accounts.evolve(acc, accounts.link_meter(acc, "WM-1", Utility.WATER, "water-2", later, LinkReason.OPERATOR))

    assert [(link.tariff_id, link.unlinked_at) for link in acc.links] == [("water", MOVE), ("water-2", None)]
    assert acc.link_at("WM-1", MOVE - timedelta(hours=1)) == acc.links[0]
    assert acc.link_at("WM-1", MOVE + timedelta(hours=1)) is None
