"""Move-out and room change (billing.md "Payments and money movements"): meters and money leave an account.

Both return the events in the order the adapter appends them, in one transaction with the
accounts folded over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from amiflow_schemas.events.accounts import (
    AccountClosed,
    AccountCloseReason,
    LinkReason,
    MeterLinkedToAccount,
    MeterUnlinkedFromAccount,
)
from amiflow_schemas.events.billing import AdjustmentPosted, AdjustmentReason, DailySettled, RefundIssued, RefundReason

from billing.core import accounts
from billing.core.accounts import Account, AccountError
from billing.core.ledger import LedgerEntry, LedgerPayload, balance_effect
from billing.core.money import ZERO
from billing.core.periods import local_date
from billing.core.settlement import check_day, settle, settlement_postings
from billing.core.tariffs import Tariff


@dataclass(frozen=True)
class MoveOut:
    """A move-out: the day's fees, the refund, the unlinked meters, the closed account, the final settlement."""

    postings: tuple[LedgerPayload, ...]
    refund: RefundIssued | None  # None when nothing positive is left
    unlinked: tuple[MeterUnlinkedFromAccount, ...]
    closed: AccountClosed
    settlement: DailySettled  # of the move-out day; the adapter settles that day no more


def move_out(account: Account, tariffs: Mapping[str, Tariff], opening_balance: Decimal,
             day_entries: Sequence[LedgerEntry], at: datetime) -> MoveOut:
    """Close an account at ``at`` after the final reading has been rated.

    ``opening_balance`` is the closing balance of the previous local day, which must be settled;
    ``day_entries`` are the entries of the move-out day so far. The day's fixed and recurring
    charges are posted before the refund, so the refund leaves exactly zero; a negative balance
    stays as arrears on the closed account.
    """
    day = local_date(at, account.zone)
    check_day(day_entries, account, day)
    postings = settlement_postings(account, tariffs, day)
    taken = [*(e.payload for e in day_entries), *postings]
    remaining = opening_balance + sum((balance_effect(p) for p in taken), ZERO)
    refund = None
    if remaining > 0:
        refund = RefundIssued(account_id=account.account_id, reason=RefundReason.MOVE_OUT, amount=remaining,
                              currency=account.currency, refunded_at=at, operator_id=None)
        taken.append(refund)
    unlinked = tuple(accounts.unlink_meter(account, link.meter_id, at, LinkReason.MOVE_OUT)
                     for link in account.meters_at(at))
    emptied = account
    for event in unlinked:
        emptied = accounts.evolve(emptied, event)
    final = remaining - (refund.amount if refund else ZERO)
    closed = accounts.close_account(emptied, AccountCloseReason.MOVE_OUT, final, at)
    return MoveOut(postings, refund, unlinked, closed, settle(account, day, opening_balance, taken))


@dataclass(frozen=True)
class RoomChange:
    """The events of a room change for each of the two accounts, each naming the other (the audit trail)."""

    source_events: tuple[MeterUnlinkedFromAccount | AdjustmentPosted, ...]
    target_events: tuple[MeterLinkedToAccount | AdjustmentPosted, ...]


def _transfer(account: Account, amount: Decimal, counterpart: str, at: datetime) -> AdjustmentPosted:
    return AdjustmentPosted(account_id=account.account_id, reason=AdjustmentReason.BALANCE_TRANSFER, amount=amount,
                            currency=account.currency, posted_at=at, meter_id=None, utility=None,
                            correction_event_id=None, quantity=None, quantity_unit=None, lines=(),
                            replaced_lines=(), counterpart_account_id=counterpart, operator_id=None, note=None)


def change_room(source: Account, target: Account, meter_ids: Sequence[str], source_balance: Decimal,
                at: datetime) -> RoomChange:
    """Move meters (at their tariffs) and the whole balance, debt included, from ``source`` to ``target``.

    ``source_balance`` is the source's balance at ``at``. Tier-period consumption stays with the
    account it was rated to; moved meters count towards the target's tiers from ``at``.
    """
    if source.currency != target.currency:
        raise AccountError(f"accounts {source.account_id} and {target.account_id} keep different currencies")
    links = [source.link_at(meter_id, at) for meter_id in meter_ids]
    moved = [link for link in links if link is not None]
    if len(moved) != len(meter_ids):
        raise AccountError(f"not every meter of {list(meter_ids)} is linked to account {source.account_id}")
    unlinked = tuple(accounts.unlink_meter(source, link.meter_id, at, LinkReason.ROOM_CHANGE, target.account_id)
                     for link in moved)
    linked = tuple(accounts.link_meter(target, link.meter_id, link.utility, link.tariff_id, at, LinkReason.ROOM_CHANGE,
                                       source.account_id) for link in moved)
    if source_balance == 0:
        return RoomChange(unlinked, linked)
    # Signed like a charge: the source is debited what it held, the target credited the same.
    return RoomChange((*unlinked, _transfer(source, source_balance, target.account_id, at)),
                      (*linked, _transfer(target, -source_balance, source.account_id, at)))
