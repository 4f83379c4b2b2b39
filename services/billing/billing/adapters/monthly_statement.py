"""A month's e-bill from the ledger: the entries whose business day falls in the local month.

Opening balance: the closing of the last settlement before the month plus any entries of unsettled
days between it and the month. Closing balance: the opening plus every entry of the month. Entries
are counted by business day, as the daily settlement counts them, so the bill of a settled month
agrees with its settlements to the cent, and the renderers check it reconciles before printing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    AdjustmentReason,
    ChargeApplied,
    ChargeKind,
    PaymentReceived,
    RecurringChargePosted,
    RefundIssued,
    SubsidyGranted,
)
from amiflow_schemas.primitives import Unit, Utility
from sqlalchemy.ext.asyncio import AsyncSession

from billing.adapters import queries, store
from billing.adapters.queries import DayEntry
from billing.core.accounts import Account
from billing.core.ledger import balance_effect
from billing.core.money import ZERO, round_money
from billing.core.periods import local_date, local_midnight
from billing.operations import as_money
from billing.statements import (
    BillingMonth,
    ChargeBasis,
    ChargeLine,
    CustomerKind,
    DailyUsage,
    Language,
    LedgerLine,
    LedgerLineKind,
    MonthlyStatement,
    Payment,
    StatementTotals,
)

UNKNOWN_ADDRESS = "—"  # accounts carry no address yet; the bill prints a dash rather than nothing
_UTILITY_ORDER = {utility: n for n, utility in enumerate(Utility)}
_BASIS_ORDER = {ChargeBasis.TIER: 0, ChargeBasis.TIME_OF_USE: 1, ChargeBasis.FLAT: 2, ChargeBasis.FIXED_DAILY: 3}
_DESCRIPTIONS: dict[str, tuple[str, str]] = {  # (English, Chinese)
    "re_rated": ("Meter {meter} re-rated after a corrected reading", "表计 {meter} 读数更正后重新计费"),
    "transfer_in": ("Balance moved from account {other} (room change)", "换房转入余额 (自账户 {other})"),
    "transfer_out": ("Balance moved to account {other} (room change)", "换房转出余额 (至账户 {other})"),
    "refund": ("Refund of the balance on moving out", "退户退还余额"),
    "recurring": ("{name} ({month})", "{name} ({month})"),
}


def _describe(key: str, language: Language, **values: str) -> str:
    english, chinese = _DESCRIPTIONS[key]
    return (chinese if language is Language.ZH_CN else english).format(**values)


async def statement_of(session: AsyncSession, tenant_id: str, account: Account, month: BillingMonth,
                       tenant_name: str, language: Language) -> MonthlyStatement:
    """The account's e-bill for ``month`` as the ledger has it now."""
    first, last = month.first_day, month.next_first_day - timedelta(days=1)
    settled = await queries.last_settlement_before(session, tenant_id, account.account_id, first)
    since = settled.settlement_date + timedelta(days=1) if settled else None
    unsettled = await queries.entries_by_day(session, tenant_id, account_id=account.account_id, first=since,
                                             last=first - timedelta(days=1))
    opening = (settled.closing_balance if settled else ZERO) + sum(
        (balance_effect(e.entry.payload) for e in unsettled), ZERO)
    entries = await queries.entries_by_day(session, tenant_id, account_id=account.account_id, first=first, last=last)
    tariffs = await store.load_tariffs(session, tenant_id, {link.tariff_id for link in account.links})
    # A version with a single step is a flat price: its one tier is not worth naming on the bill.
    flat = frozenset(v.version_id for t in tariffs.values() for v in t.versions if len(v.tiers) == 1)
    return monthly_statement(account, month, as_money(opening), entries, tenant_name, language, flat)


def monthly_statement(account: Account, month: BillingMonth, opening: Decimal, entries: Sequence[DayEntry],
                      tenant_name: str, language: Language, flat_versions: frozenset[str] = frozenset(),
                      ) -> MonthlyStatement:
    """The bill of the month's entries (business days in ``month``), opening at ``opening``."""
    sheet = _Sheet(account, month, language, flat_versions)
    for day_entry in entries:
        sheet.add(day_entry)
    closing = opening + sum((balance_effect(e.entry.payload) for e in entries), ZERO)
    charges = sheet.charge_lines()
    return MonthlyStatement(
        tenant_name=tenant_name, account_id=account.account_id, customer_name=account.customer_id,
        customer_kind=CustomerKind(account.customer_kind.value), address=UNKNOWN_ADDRESS, month=month,
        currency=account.currency, time_zone=account.time_zone, opening_balance=as_money(opening),
        closing_balance=as_money(closing), payments=tuple(sheet.payments), charges=charges,
        other_lines=tuple(sheet.other), daily_usage=sheet.usage(),
        totals=StatementTotals(payments=_sum(p.amount for p in sheet.payments), charges=_sum(c.amount for c in charges),
                               other=_sum(o.amount for o in sheet.other)),
    )


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return as_money(sum(amounts, Decimal("0.00")))


@dataclass
class _Group:
    """The month's charges of one service at one price: quantity, exact cost, and (once allocated) the amount."""

    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    amount: Decimal = ZERO


_GroupKey = tuple[Utility, ChargeBasis, int | None, str | None, Decimal, Unit | None]


@dataclass
class _Sheet:
    account: Account
    month: BillingMonth
    language: Language
    flat_versions: frozenset[str]
    payments: list[Payment] = field(default_factory=list)
    other: list[LedgerLine] = field(default_factory=list)
    groups: dict[_GroupKey, _Group] = field(default_factory=dict)
    posted: dict[Utility, Decimal] = field(default_factory=dict)  # consumption charges as posted, per service
    daily: dict[tuple[date, Utility], tuple[Unit, Decimal]] = field(default_factory=dict)

    def _in_month(self, preferred: datetime, entry: DayEntry) -> datetime:
        # A bill lists its lines in its own month: a payment made on the 31st and credited on the
        # 1st shows when it was credited.
        zone = self.account.zone
        for moment in (preferred, entry.entry.recorded_at):
            if local_date(moment, zone) in self.month:
                return moment
        return local_midnight(entry.business_day, zone)

    def add(self, entry: DayEntry) -> None:
        p = entry.entry.payload
        if isinstance(p, PaymentReceived):
            self.payments.append(Payment(self._in_month(p.paid_at, entry), p.channel, p.provider_transaction_id,
                                         as_money(p.amount)))
        elif isinstance(p, ChargeApplied):
            self._charge(p, entry.business_day)
        elif isinstance(p, AdjustmentPosted):
            self._adjustment(p, entry)
        elif isinstance(p, SubsidyGranted):
            self._line(LedgerLineKind.SUBSIDY, self._in_month(p.granted_at, entry), p.reason, p.amount)
        elif isinstance(p, RefundIssued):
            self._line(LedgerLineKind.REFUND, self._in_month(p.refunded_at, entry),
                       _describe("refund", self.language), -p.amount)
        elif isinstance(p, RecurringChargePosted):
            self._line(LedgerLineKind.RECURRING_CHARGE, local_midnight(entry.business_day, self.account.zone),
                       _describe("recurring", self.language, name=p.charge_name, month=p.month.strftime("%Y-%m")),
                       -p.amount)

    def _line(self, kind: LedgerLineKind, at: datetime, description: str, amount: Decimal) -> None:
        if amount != 0:  # a line of zero moves no money and the bill has no place for it
            self.other.append(LedgerLine(kind, at, description, as_money(amount)))

    def _adjustment(self, p: AdjustmentPosted, entry: DayEntry) -> None:
        if p.reason is AdjustmentReason.RE_RATED and p.utility is not None and p.quantity is not None:
            self._use(entry.business_day, p.utility, p.quantity_unit, p.quantity)
        if p.reason is AdjustmentReason.BALANCE_TRANSFER:
            key = "transfer_in" if p.amount < 0 else "transfer_out"
            text = _describe(key, self.language, other=p.counterpart_account_id or "")
        elif p.reason is AdjustmentReason.RE_RATED:
            text = _describe("re_rated", self.language, meter=p.meter_id or "")
        else:
            text = p.note or p.reason.value
        self._line(LedgerLineKind.ADJUSTMENT, self._in_month(p.posted_at, entry), text, -p.amount)

    def _use(self, day: date, utility: Utility, unit: Unit | None, quantity: Decimal) -> None:
        if unit is None:
            return
        known, total = self.daily.get((day, utility), (unit, ZERO))
        if known is not unit:
            raise ValueError(f"{utility.value} consumption of {day} in {known.value} and {unit.value}")
        self.daily[day, utility] = (unit, total + quantity)

    def _charge(self, p: ChargeApplied, day: date) -> None:
        if p.kind is ChargeKind.FIXED_DAILY:
            for line in p.lines:
                group = self._group((p.utility, ChargeBasis.FIXED_DAILY, None, None, line.unit_price, None))
                group.quantity += line.quantity
                group.amount += p.amount
            return
        self.posted[p.utility] = self.posted.get(p.utility, ZERO) + p.amount
        if p.quantity is not None:
            self._use(day, p.utility, p.quantity_unit, p.quantity)
        for line in p.lines:
            basis = (ChargeBasis.TIME_OF_USE if line.register else ChargeBasis.FLAT
                     if line.tier is None or line.tariff_version_id in self.flat_versions else ChargeBasis.TIER)
            group = self._group((p.utility, basis, line.tier if basis is ChargeBasis.TIER else None, line.register,
                                 line.unit_price, p.quantity_unit))
            group.quantity += line.quantity
            group.cost += line.cost

    def _group(self, key: _GroupKey) -> _Group:
        return self.groups.setdefault(key, _Group())

    def charge_lines(self) -> tuple[ChargeLine, ...]:
        for utility, posted in self.posted.items():
            _allocate(posted, [group for (u, basis, *_), group in self.groups.items()
                               if u is utility and basis is not ChargeBasis.FIXED_DAILY])
        ordered = sorted(self.groups.items(), key=lambda item: _line_order(item[0]))
        return tuple(ChargeLine(utility, basis, group.quantity, unit, unit_price, as_money(group.amount), tier=tier,
                                register=register)
                     for (utility, basis, tier, register, unit_price, unit), group in ordered)

    def usage(self) -> tuple[DailyUsage, ...]:
        return tuple(DailyUsage(day, utility, quantity, unit)
                     for (day, utility), (unit, quantity) in sorted(
                         self.daily.items(), key=lambda item: (item[0][0], _UTILITY_ORDER[item[0][1]])))


def _line_order(key: _GroupKey) -> tuple[int, int, int, str, Decimal]:
    utility, basis, tier, register, unit_price, _ = key
    return _UTILITY_ORDER[utility], _BASIS_ORDER[basis], tier or 0, register or "", unit_price


def _allocate(posted: Decimal, groups: list[_Group]) -> None:
    """Share a service's posted charges over its price groups: each its exact cost to the cent, the
    cumulative-rounding difference (a few cents at most) on the largest groups, never below zero."""
    for group in groups:
        group.amount = round_money(group.cost)
    rest = posted - sum((g.amount for g in groups), ZERO)
    for group in sorted(groups, key=lambda g: g.cost, reverse=True):
        if rest == 0:
            break
        step = rest if rest > 0 else max(rest, -group.amount)
        group.amount += step
        rest -= step
