"""Daily settlement: the close of one account's local day (billing.md "Daily settlement").

The adapter settles day D once D has ended in the tenant's time zone: it passes the ledger entries
whose ``business_day`` is D and the closing balance of D - 1. ``close_day`` returns the fixed daily
charges and recurring charges to post for D (they belong to D) and the ``DailySettled``, all a pure
function of those inputs, so a re-run gives the same events and the adapter keeps the first.

A consumption charge for a reading measured before D (it arrived after its own day was settled)
counts in D's ``adjustments_total``, never in a second settlement of its day. D's consumption per
service includes such late readings and the quantity changes of re-ratings, so it may be negative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    ChargeApplied,
    ChargeKind,
    ChargeLine,
    DailySettled,
    PaymentReceived,
    RecurringChargePosted,
    UtilityConsumption,
)
from amiflow_schemas.primitives import Unit, Utility

from billing.core.accounts import Account
from billing.core.ledger import LedgerEntry, LedgerPayload, balance_effect, business_day
from billing.core.money import ZERO, round_money
from billing.core.periods import day_bounds, local_date
from billing.core.tariffs import Tariff, TariffVersion


class SettlementError(ValueError):
    """Inputs a settlement cannot be computed from; the message says which."""


def _versions_at_day_start(account: Account, tariffs: Mapping[str, Tariff],
                           day: date) -> list[tuple[str, str, Utility, TariffVersion]]:
    # The account holding a meter when the local day starts pays that day's fees for it: each
    # meter-day is paid exactly once, also across a room change or a move-out later that day.
    start, _ = day_bounds(day, account.zone)
    found = []
    for link in account.meters_at(start):
        if link.tariff_id not in tariffs:
            raise SettlementError(f"tariff {link.tariff_id} of meter {link.meter_id} was not given")
        version = tariffs[link.tariff_id].version_at(start)
        if version is not None:
            found.append((link.meter_id, link.tariff_id, link.utility, version))
    return found


def fixed_daily_charges(account: Account, tariffs: Mapping[str, Tariff], day: date) -> tuple[ChargeApplied, ...]:
    """The meter service fees of ``day``: one per meter linked when the day starts, when its fee is not zero."""
    start, end = day_bounds(day, account.zone)
    return tuple(
        ChargeApplied(
            account_id=account.account_id, kind=ChargeKind.FIXED_DAILY, meter_id=meter_id, utility=utility,
            reading_event_id=None, period_start=start, period_end=end, quantity=None, quantity_unit=None,
            lines=(ChargeLine(tariff_version_id=version.version_id, tier=None, register=None, quantity=Decimal(1),
                              unit_price=version.fixed_daily_charge, cost=version.fixed_daily_charge),),
            amount=round_money(version.fixed_daily_charge), currency=account.currency, tier_period_cost=None,
        )
        for meter_id, _, utility, version in _versions_at_day_start(account, tariffs, day)
        if version.fixed_daily_charge > 0
    )


def recurring_charges(account: Account, tariffs: Mapping[str, Tariff], day: date) -> tuple[RecurringChargePosted, ...]:
    """On a month's first local day, each tariff's monthly charges, once per tariff the account's meters use."""
    if day.day != 1:
        return ()
    charged: dict[str, TariffVersion] = {}
    for _, tariff_id, _, version in _versions_at_day_start(account, tariffs, day):
        charged.setdefault(tariff_id, version)
    return tuple(
        RecurringChargePosted(account_id=account.account_id, tariff_id=tariff_id,
                              tariff_version_id=version.version_id, charge_name=charge.name, month=day,
                              settlement_date=day, amount=charge.amount, currency=account.currency)
        for tariff_id, version in sorted(charged.items()) for charge in version.recurring_charges
    )


def settlement_postings(account: Account, tariffs: Mapping[str, Tariff], day: date) -> tuple[LedgerPayload, ...]:
    """Everything the settlement of ``day`` posts itself: fixed daily fees, then recurring charges."""
    return (*fixed_daily_charges(account, tariffs, day), *recurring_charges(account, tariffs, day))


def _consumption(payloads: Sequence[LedgerPayload]) -> tuple[UtilityConsumption, ...]:
    sums: dict[Utility, tuple[Unit, Decimal]] = {}
    for p in payloads:
        if not isinstance(p, ChargeApplied | AdjustmentPosted) or p.utility is None:
            continue
        if p.quantity is not None and p.quantity_unit is not None:
            unit, total = sums.get(p.utility, (p.quantity_unit, ZERO))
            if unit is not p.quantity_unit:
                raise SettlementError(f"{p.utility.value} consumption in {unit.value} and {p.quantity_unit.value}")
            sums[p.utility] = (unit, total + p.quantity)
    return tuple(UtilityConsumption(utility=utility, quantity=total, unit=unit)
                 for utility, (unit, total) in sorted(sums.items()))


def settle(account: Account, day: date, opening_balance: Decimal, payloads: Sequence[LedgerPayload]) -> DailySettled:
    """The DailySettled of ``day`` from the day's ledger entries (postings included) and the opening balance."""
    charges = fixed = payments = ZERO
    for p in payloads:
        if isinstance(p, ChargeApplied) and p.kind is ChargeKind.FIXED_DAILY:
            fixed += p.amount
        elif isinstance(p, ChargeApplied) and local_date(p.period_end, account.zone) >= day:
            charges += p.amount
        elif isinstance(p, PaymentReceived):
            payments += p.amount
    # Everything else, credit > 0: charges for readings of earlier days (late readings),
    # re-ratings, refunds, subsidies, recurring monthly charges, balance transfers.
    adjustments = sum((balance_effect(p) for p in payloads), ZERO) - payments + charges + fixed
    return DailySettled(
        account_id=account.account_id, settlement_date=day, time_zone=account.time_zone,
        currency=account.currency, opening_balance=opening_balance, charges_total=charges,
        fixed_charges_total=fixed, payments_total=payments, adjustments_total=adjustments,
        closing_balance=opening_balance + payments + adjustments - charges - fixed,
        consumption=_consumption(payloads),
    )


@dataclass(frozen=True)
class DayClose:
    """A settled day: the postings to append first, then the settlement."""

    postings: tuple[LedgerPayload, ...]
    settlement: DailySettled


def check_day(entries: Sequence[LedgerEntry], account: Account, day: date) -> None:
    """Raise SettlementError unless every entry belongs to ``day``."""
    strays = [str(e.event_id) for e in entries if business_day(e, account.zone) != day]
    if strays:
        raise SettlementError(f"entries of another day given to the settlement of {day}: {', '.join(strays)}")


def close_day(account: Account, tariffs: Mapping[str, Tariff], day: date, opening_balance: Decimal,
              entries: Sequence[LedgerEntry]) -> DayClose:
    """Settle ``day``: post its fixed and recurring charges and sum everything it took."""
    check_day(entries, account, day)
    postings = settlement_postings(account, tariffs, day)
    settled = settle(account, day, opening_balance, [*(e.payload for e in entries), *postings])
    return DayClose(postings, settled)
