"""The rows of billing's reports, read from the ledger by business day (the local day settlements count)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum

from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    ChargeApplied,
    PaymentChannel,
    PaymentReceived,
)
from amiflow_schemas.primitives import Unit, Utility
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import queries, store
from billing.adapters.queries import DayEntry
from billing.core.accounts import Account
from billing.core.balance_state import BalanceStatus
from billing.core.ledger import balance_effect
from billing.core.money import ZERO
from billing.operations import as_money
from billing.statements import Arrears, ConsumptionByGroup, CustomerKind, DailyCollections, Language
from billing.statements.labels import customer_kind_name

# The unit a service's row is shown in when the period brought fees but no metered quantity.
_USUAL_UNIT = {Utility.WATER: Unit.M3, Utility.GAS: Unit.M3, Utility.ELECTRICITY: Unit.KWH, Utility.HEAT: Unit.GJ}


class GroupBy(StrEnum):
    """How the consumption report groups accounts."""

    CUSTOMER_KIND = "customer_kind"
    ACCOUNT = "account"


async def daily_collections(session: AsyncSession, tenant_id: str, first: date, last: date) -> list[DailyCollections]:
    """Payments credited per local day and channel, first..last inclusive."""
    entries = await queries.entries_by_day(session, tenant_id, first=first, last=last,
                                           event_types=[PaymentReceived.EVENT_TYPE])
    sums: dict[tuple[date, PaymentChannel, str], tuple[int, Decimal]] = {}
    for e in entries:
        payment = e.entry.payload
        if not isinstance(payment, PaymentReceived):
            continue
        count, amount = sums.get((e.business_day, payment.channel, payment.currency), (0, ZERO))
        sums[e.business_day, payment.channel, payment.currency] = (count + 1, amount + payment.amount)
    return [DailyCollections(day, channel, count, as_money(amount), currency)
            for (day, channel, currency), (count, amount) in sorted(sums.items())]


def depleted_since(account: Account, entries: Sequence[DayEntry]) -> date | None:
    """The business day the balance last became depleted (at or below -credit limit, until above the
    restore threshold), folding the ledger with the account's present settings."""
    balance, since = ZERO, None
    settings = account.settings
    for e in entries:
        balance += balance_effect(e.entry.payload)
        if since is None and balance <= -settings.credit_limit:
            since = e.business_day
        elif since is not None and balance > settings.restore_threshold:
            since = None
    return since


async def arrears(session: AsyncSession, tenant_id: str, today: date) -> list[Arrears]:
    """Every account whose balance is depleted, with since when and its last payment."""
    rows = []
    for row in await queries.balances_with_status(session, tenant_id, BalanceStatus.DEPLETED.value):
        account = await store.load_account(session, tenant_id, row["account_id"])
        if account is None:
            continue
        entries = await queries.entries_by_day(session, tenant_id, account_id=account.account_id)
        paid = [e for e in entries if isinstance(e.entry.payload, PaymentReceived)]
        since = depleted_since(account, entries) or (entries[-1].business_day if entries else today)
        rows.append(Arrears(account.account_id, account.customer_id, as_money(row["balance"]), account.currency,
                            since, max((today - since).days, 0), paid[-1].business_day if paid else None,
                            as_money(paid[-1].entry.payload.amount) if paid else None))
    return rows


async def consumption(session: AsyncSession, tenant_id: str, first: date, last: date, group_by: GroupBy,
                      language: Language) -> list[ConsumptionByGroup]:
    """Metered quantities and charges (re-ratings included) per service and customer group, first..last."""
    entries = await queries.entries_by_day(session, tenant_id, first=first, last=last,
                                           event_types=[ChargeApplied.EVENT_TYPE, AdjustmentPosted.EVENT_TYPE])
    accounts: dict[str, Account | None] = {}
    sums: dict[tuple[Utility, str, str], tuple[Unit | None, Decimal, Decimal]] = {}
    for e in entries:
        p = e.entry.payload
        if not isinstance(p, ChargeApplied | AdjustmentPosted) or p.utility is None:
            continue  # a balance transfer moves money, not consumption
        if p.account_id not in accounts:
            accounts[p.account_id] = await store.load_account(session, tenant_id, p.account_id)
        account = accounts[p.account_id]
        if account is None:
            continue
        group = (customer_kind_name(CustomerKind(account.customer_kind.value), language)
                 if group_by is GroupBy.CUSTOMER_KIND else account.account_id)
        unit, quantity, amount = sums.get((p.utility, group, account.currency), (None, ZERO, ZERO))
        if p.quantity is not None and p.quantity_unit is not None:
            if unit is not None and unit is not p.quantity_unit:
                raise ValueError(f"{p.utility.value} of {group} in {unit.value} and {p.quantity_unit.value}")
            unit, quantity = p.quantity_unit, quantity + p.quantity
        sums[p.utility, group, account.currency] = (unit, quantity, amount + p.amount)
    return [ConsumptionByGroup(utility, group, quantity, unit or _USUAL_UNIT[utility], as_money(amount), currency)
            for (utility, group, currency), (unit, quantity, amount) in sorted(sums.items())]
