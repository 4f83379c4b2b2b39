"""The append-only prepaid ledger: the balance is its fold, nothing is ever updated in place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TypeAlias
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    ChargeApplied,
    ChargeKind,
    PaymentReceived,
    RecurringChargePosted,
    RefundIssued,
    SubsidyGranted,
)
from amiflow_schemas.primitives import Utility

from billing.core.money import ZERO
from billing.core.periods import local_date

LedgerPayload: TypeAlias = (ChargeApplied | PaymentReceived | RefundIssued | SubsidyGranted | AdjustmentPosted
                 | RecurringChargePosted)
LEDGER_TYPES = (ChargeApplied, PaymentReceived, RefundIssued, SubsidyGranted, AdjustmentPosted, RecurringChargePosted)


@dataclass(frozen=True)
class LedgerEntry:
    """A ledger event as billing recorded it: the payload and the envelope's event id and recorded_at."""

    event_id: UUID
    recorded_at: datetime
    payload: LedgerPayload


def balance_effect(payload: LedgerPayload) -> Decimal:
    """What one entry does to the balance: credit > 0, debit < 0."""
    if isinstance(payload, PaymentReceived | SubsidyGranted):
        return payload.amount
    # A charge, refund or recurring charge is a debit; an adjustment is signed like a charge.
    return -payload.amount


def balance(payloads: Iterable[LedgerPayload]) -> Decimal:
    """The balance: the sum of every entry's effect since the account opened at zero."""
    return sum((balance_effect(p) for p in payloads), ZERO)


def business_day(entry: LedgerEntry, zone: ZoneInfo) -> date:
    """The local day whose settlement counts the entry.

    Entries the settlement posts belong to the day it settles (a fixed daily fee to its day, a
    recurring charge to its settlement_date); every other entry to the local day it was recorded
    on. Recording times only move forward, so an entry recorded after a day was settled always
    lands in a later, unsettled day: a late reading is never a second settlement of its own day.
    """
    payload = entry.payload
    if isinstance(payload, ChargeApplied) and payload.kind is ChargeKind.FIXED_DAILY:
        return local_date(payload.period_start, zone)
    if isinstance(payload, RecurringChargePosted):
        return payload.settlement_date
    return local_date(entry.recorded_at, zone)


@dataclass(frozen=True)
class LedgerTotals:
    """An account's ledger split for reports: one sub-ledger per service, and the account-level rest."""

    balance: Decimal
    payments: Decimal
    subsidies: Decimal
    refunds: Decimal
    recurring_charges: Decimal
    by_service: Mapping[Utility, Decimal]  # net charged per service: charges plus re-ratings
    other_adjustments: Decimal  # signed like a charge: transfers, manual adjustments


def totals(payloads: Iterable[LedgerPayload]) -> LedgerTotals:
    """The ledger's totals; balance = payments + subsidies - refunds - recurring - services - other."""
    sums: dict[type, Decimal] = dict.fromkeys(LEDGER_TYPES, ZERO)
    by_service: dict[Utility, Decimal] = {}
    for payload in payloads:
        utility = getattr(payload, "utility", None)
        if isinstance(payload, ChargeApplied | AdjustmentPosted) and utility is not None:
            by_service[utility] = by_service.get(utility, ZERO) + payload.amount
        else:
            sums[type(payload)] += payload.amount
    payments, subsidies = sums[PaymentReceived], sums[SubsidyGranted]
    refunds, recurring, other = sums[RefundIssued], sums[RecurringChargePosted], sums[AdjustmentPosted]
    net = payments + subsidies - refunds - recurring - sum(by_service.values(), ZERO) - other
    return LedgerTotals(balance=net, payments=payments, subsidies=subsidies, refunds=refunds,
                        recurring_charges=recurring, by_service=dict(sorted(by_service.items())),
                        other_adjustments=other)
