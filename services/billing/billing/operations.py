"""What billing's API does to accounts, tariffs and money: load state, ask the core, persist the events.

Each function runs inside the caller's transaction and takes the account lock before it reads the
state it decides on, so an API request and the worker's rating or settlement never interleave on
one account. A request the state does not allow raises ``Refused``; the HTTP adapter turns it
into 404 / 409 / 422 with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amiflow_runtime.db import lock_for_transaction
from amiflow_schemas import Envelope, EventPayload
from amiflow_schemas.events.accounts import AccountSettings, CustomerKind, LinkReason
from amiflow_schemas.events.billing import AdjustmentPosted, PaymentChannel, PaymentReceived, SubsidyGranted
from amiflow_schemas.events.tariffs import TariffPublished
from amiflow_schemas.primitives import Utility
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from billing import posting
from billing.adapters import queries, store
from billing.core import accounts, moves, payments
from billing.core import tariffs as tariff_core
from billing.core.accounts import Account, AccountError, AccountStatus
from billing.core.money import CENT
from billing.core.periods import local_date
from billing.core.settlement import SettlementError
from billing.core.tariffs import Tariff, TariffError

T = TypeVar("T")


class Refusal(StrEnum):
    """Why a request was refused: the HTTP adapter maps each to a status code."""

    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # the state does not allow it (a closed account, an unsettled day …)
    INVALID = "invalid"  # the request itself is wrong (an amount, a currency, an unknown tariff …)


class Refused(Exception):
    """A request billing will not carry out; ``reason`` says why, ``problem`` is a stable code."""

    def __init__(self, refusal: Refusal, reason: str, problem: str | None = None) -> None:
        super().__init__(reason)
        self.refusal = refusal
        self.reason = reason
        self.problem = problem or refusal.value


def as_money(amount: Decimal) -> Decimal:
    """A whole-cent amount with exactly two places (the database may hand back more trailing zeros)."""
    return amount.quantize(CENT) if amount == amount.quantize(CENT) else amount


async def _emit(session: AsyncSession, tenant_id: str, key: str, payloads: Sequence[EventPayload],
                now: datetime) -> None:
    await store.emit(session, [store.envelope_of(p, tenant_id, key, now, uuid.uuid4()) for p in payloads], now)


async def account_of(session: AsyncSession, tenant_id: str, account_id: str) -> Account:
    """The account as its events fold; refused when it was never opened."""
    account = await store.load_account(session, tenant_id, account_id)
    if account is None:
        raise Refused(Refusal.NOT_FOUND, f"no account {account_id}", "unknown_account")
    return account


async def locked_account(session: AsyncSession, tenant_id: str, account_id: str) -> Account:
    """Lock the account and load it for a change; refused when it does not exist or is closed."""
    await posting.lock_account(session, tenant_id, account_id)
    account = await account_of(session, tenant_id, account_id)
    if account.status is AccountStatus.CLOSED:
        raise Refused(Refusal.CONFLICT, f"account {account_id} is closed", "account_closed")
    return account


async def open_account(session: AsyncSession, tenant_id: str, account_id: str, customer_id: str,
                       customer_kind: CustomerKind, settings: AccountSettings, billing_year_start: date | None,
                       currency: str, time_zone: str, now: datetime) -> Account:
    """Open an account with a zero balance in the tenant's currency and time zone."""
    await posting.lock_account(session, tenant_id, account_id)
    if await store.load_account(session, tenant_id, account_id) is not None:
        raise Refused(Refusal.CONFLICT, f"account {account_id} already exists", "account_exists")
    try:
        zone = ZoneInfo(time_zone)
        opened = accounts.open_account(account_id, customer_id, customer_kind, currency, time_zone,
                                       billing_year_start or local_date(now, zone), settings, now)
    except (AccountError, ZoneInfoNotFoundError, ValueError) as exc:
        raise Refused(Refusal.INVALID, str(exc)) from None
    await _emit(session, tenant_id, account_id, [opened], now)
    return accounts.evolve(None, opened)


async def change_settings(session: AsyncSession, tenant_id: str, account_id: str, settings: AccountSettings,
                          changed_by: str, now: datetime) -> Account:
    """Replace the settings, then assess the balance against the new thresholds."""
    account = await locked_account(session, tenant_id, account_id)
    changed = accounts.change_settings(account, settings, now, changed_by)
    await _emit(session, tenant_id, account_id, [changed], now)
    account = accounts.evolve(account, changed)
    await posting.assess_balance(session, tenant_id, account, now)
    return account


async def link_meter(session: AsyncSession, tenant_id: str, account_id: str, meter_id: str, utility: Utility,
                     tariff_id: str, at: datetime, reason: LinkReason, now: datetime) -> Account:
    """Make the account pay for a meter from ``at`` at a published tariff of the meter's service."""
    account = await locked_account(session, tenant_id, account_id)
    tariff = await store.load_tariff(session, tenant_id, tariff_id)
    if tariff is None:
        raise Refused(Refusal.INVALID, f"no tariff {tariff_id}", "unknown_tariff")
    if tariff.utility is not utility or tariff.currency != account.currency:
        raise Refused(Refusal.INVALID, f"tariff {tariff_id} prices {tariff.utility.value} in {tariff.currency}, "
                                       f"not {utility.value} in {account.currency}", "tariff_mismatch")
    # The new link runs from ``at`` on: any other account's link not ended by then would overlap it.
    for other in await queries.links_of_meter(session, tenant_id, meter_id):
        if other.account_id != account_id and (other.unlinked_at is None or other.unlinked_at > at):
            raise Refused(Refusal.CONFLICT, f"account {other.account_id} pays for meter {meter_id} from "
                                            f"{other.linked_at.isoformat()}; unlink it there first",
                          "meter_linked_elsewhere")
    linked = _decided(lambda: accounts.link_meter(account, meter_id, utility, tariff_id, at, reason))
    await _emit(session, tenant_id, account_id, [linked], now)
    return accounts.evolve(account, linked)


async def unlink_meter(session: AsyncSession, tenant_id: str, account_id: str, meter_id: str, at: datetime,
                       reason: LinkReason, now: datetime) -> Account:
    """Stop the account paying for a meter from ``at``."""
    account = await locked_account(session, tenant_id, account_id)
    unlinked = _decided(lambda: accounts.unlink_meter(account, meter_id, at, reason))
    await _emit(session, tenant_id, account_id, [unlinked], now)
    return accounts.evolve(account, unlinked)


def _decided(decide: Callable[[], T]) -> T:
    try:
        return decide()
    except (AccountError, SettlementError) as exc:
        raise Refused(Refusal.CONFLICT, str(exc)) from None


async def _closing_of_previous_day(session: AsyncSession, tenant_id: str, account: Account, day: date) -> Decimal:
    """The balance the move-out day opens with: the previous day must be settled, unless the account is new."""
    row = await store.balance_of(session, tenant_id, account.account_id)
    settled_through = row["settled_through"] if row else None
    previous = day - timedelta(days=1)
    if settled_through is not None and settled_through >= day:
        raise Refused(Refusal.CONFLICT, f"{day} is settled already; a move-out settles its own day", "day_settled")
    if local_date(account.opened_at, account.zone) == day:
        return Decimal(0)
    if settled_through != previous:
        first = settled_through + timedelta(days=1) if settled_through else local_date(account.opened_at,
                                                                                      account.zone)
        raise Refused(Refusal.CONFLICT, f"the days {first} to {previous} are not settled yet; the daily settlement "
                                        "settles them shortly after midnight, then move out", "days_unsettled")
    return (await store.settlements(session, tenant_id, account.account_id, previous, previous))[-1].closing_balance


async def move_out(session: AsyncSession, tenant_id: str, account_id: str,
                   now: datetime) -> tuple[Account, moves.MoveOut]:
    """Settle today, refund the positive balance, unlink every meter and close the account."""
    account = await locked_account(session, tenant_id, account_id)
    day = local_date(now, account.zone)
    opening = await _closing_of_previous_day(session, tenant_id, account, day)
    tariffs = await store.load_tariffs(session, tenant_id, {link.tariff_id for link in account.links})
    entries = await store.entries_of_day(session, tenant_id, account_id, day)
    final = _decided(lambda: moves.move_out(account, tariffs, opening, entries, now))
    emptied = account
    for unlinked in final.unlinked:
        emptied = accounts.evolve(emptied, unlinked)
    # Assessed without meters: they leave in this transaction, so no cut-off may name them.
    postings = [*final.postings, *([final.refund] if final.refund else [])]
    if postings:
        await posting.post(session, tenant_id, emptied, postings, now)
    await _emit(session, tenant_id, account_id, [*final.unlinked, final.closed, final.settlement], now)
    return accounts.evolve(emptied, final.closed), final


async def change_room(session: AsyncSession, tenant_id: str, source_id: str, target_id: str,
                      meter_ids: Sequence[str], now: datetime) -> tuple[Account, Account]:
    """Move meters and the whole balance from one account to another, each side naming the other."""
    if source_id == target_id:
        raise Refused(Refusal.INVALID, "a room change moves meters to another account", "same_account")
    # Locks in id order: two room changes between the same accounts cannot deadlock.
    for account_id in sorted((source_id, target_id)):
        await posting.lock_account(session, tenant_id, account_id)
    source = await locked_account(session, tenant_id, source_id)
    target = await locked_account(session, tenant_id, target_id)
    row = await store.balance_of(session, tenant_id, source_id)
    balance = as_money(row["balance"]) if row else Decimal(0)
    change = _decided(lambda: moves.change_room(source, target, meter_ids, balance, now))
    source = await _apply(session, tenant_id, source, change.source_events, now)
    target = await _apply(session, tenant_id, target, change.target_events, now)
    return source, target


async def _apply(session: AsyncSession, tenant_id: str, account: Account, events: Sequence[Any],
                 now: datetime) -> Account:
    lifecycle = [e for e in events if not isinstance(e, AdjustmentPosted)]
    await _emit(session, tenant_id, account.account_id, lifecycle, now)
    for event in lifecycle:
        account = accounts.evolve(account, event)
    transfers = [e for e in events if isinstance(e, AdjustmentPosted)]
    if transfers:
        await posting.post(session, tenant_id, account, transfers, now)
    return account


async def publish_tariff(session: AsyncSession, tenant_id: str, published: TariffPublished, currency: str,
                         now: datetime) -> Tariff:
    """Add a version to a tariff (or start one); versions of a tariff in use only take effect ahead."""
    if published.currency != currency:
        raise Refused(Refusal.INVALID, f"tariffs of this tenant are in {currency}, not {published.currency}",
                      "wrong_currency")
    await lock_for_transaction(session, tenant_id, "tariff", published.tariff_id)
    tariff = await store.load_tariff(session, tenant_id, published.tariff_id)
    if tariff is not None:
        if any(v.version_id == published.version_id for v in tariff.versions):
            raise Refused(Refusal.CONFLICT, f"tariff {published.tariff_id} already has a version "
                                            f"{published.version_id}; versions never change", "version_exists")
        if published.effective_from < now:
            # Readings already rated at the old prices would disagree with a replay: post adjustments instead.
            raise Refused(Refusal.INVALID, f"a new version of tariff {published.tariff_id} takes effect from now on, "
                                           f"not from {published.effective_from.isoformat()}", "retroactive_version")
    try:
        evolved = tariff_core.evolve(tariff, published)
    except TariffError as exc:
        raise Refused(Refusal.INVALID, str(exc), "invalid_tariff") from None
    await _emit(session, tenant_id, published.tariff_id, [published], now)
    return evolved


def checked_amount(amount: object, currency: str, tenant_currency: str) -> Decimal:
    """The amount of a credit when it is acceptable money in the tenant's currency; refused otherwise."""
    check = payments.check_amount(amount, currency, tenant_currency)
    if check.amount is None:
        raise Refused(Refusal.INVALID, check.detail, check.problem.value if check.problem else None)
    return check.amount


def payment_of(account_id: str, channel: PaymentChannel, provider_transaction_id: str, amount: object,
               currency: str, paid_at: datetime | None, tenant_currency: str, now: datetime) -> PaymentReceived:
    """A payment to credit: whole cents above zero in the tenant's currency, not paid in the future."""
    value = checked_amount(amount, currency, tenant_currency)
    if paid_at is not None and paid_at > now + payments.CALLBACK_TOLERANCE:
        raise Refused(Refusal.INVALID, f"paid_at {paid_at.isoformat()} is in the future", "paid_in_future")
    return PaymentReceived(account_id=account_id, channel=channel, provider_transaction_id=provider_transaction_id,
                           amount=value, currency=currency, paid_at=paid_at or now)


@dataclass(frozen=True)
class Credit:
    """The ledger event that credits a payment or subsidy; ``new`` is False when an earlier request did."""

    event: Envelope[Any]
    new: bool


async def credit(session: AsyncSession, tenant_id: str, payload: PaymentReceived | SubsidyGranted,
                 now: datetime) -> Credit:
    """Credit once per provider transaction and batch line: a repeat answers with the first credit."""
    keys = sorted(store.payment_keys_of(payload))
    for key in keys:  # before the account lock, in key order: a repeat waits for the first to commit
        await lock_for_transaction(session, tenant_id, "credit", key)
    first = await store.credited(session, tenant_id, keys)
    if first is not None:
        _require_same(first.payload, payload)
        return Credit(first, False)
    account = await locked_account(session, tenant_id, payload.account_id)
    if payload.currency != account.currency:
        raise Refused(Refusal.INVALID, f"account {account.account_id} is kept in {account.currency}",
                      payments.AmountProblem.WRONG_CURRENCY.value)
    events = await posting.post(session, tenant_id, account, [payload], now)
    return Credit(events[0], True)


def _require_same(first: Any, repeat: PaymentReceived | SubsidyGranted) -> None:
    same = (type(first) is type(repeat) and first.account_id == repeat.account_id and first.amount == repeat.amount
            and first.currency == repeat.currency)
    if not same:
        raise Refused(Refusal.CONFLICT, f"already credited as a {type(first).__name__} of {as_money(first.amount)} "
                                        f"{first.currency} to account {first.account_id}", "key_used")


class LineStatus(StrEnum):
    """What became of one line of a batch recharge or subsidy."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # an earlier request credited this line already
    REJECTED = "rejected"


@dataclass(frozen=True)
class BatchOrder:
    """A batch of credits: recharges (payments through ``channel``) or subsidies, in one currency."""

    subsidy: bool
    batch_id: str
    currency: str
    tenant_currency: str
    channel: PaymentChannel = PaymentChannel.OPERATOR


@dataclass(frozen=True)
class LineOutcome:
    line_number: int
    account_id: str | None
    status: LineStatus
    event_id: uuid.UUID | None = None
    problem: str | None = None
    reason: str | None = None


def _batch_credit(order: BatchOrder, number: int, line: Mapping[str, Any],
                  now: datetime) -> PaymentReceived | SubsidyGranted:
    amount = checked_amount(line.get("amount"), order.currency, order.tenant_currency)
    if order.subsidy:
        return SubsidyGranted(account_id=line.get("account_id"), batch_id=order.batch_id, line_number=number,
                              amount=amount, currency=order.currency, reason=line.get("reason"), granted_at=now)
    return PaymentReceived(account_id=line.get("account_id"), channel=order.channel, amount=amount,
                           provider_transaction_id=f"{order.batch_id}/{number}", currency=order.currency,
                           paid_at=now, batch_id=order.batch_id, line_number=number)


async def credit_batch_line(sessions: Callable[[], Any], tenant_id: str, order: BatchOrder, number: int,
                            line: Mapping[str, Any], now: datetime) -> LineOutcome:
    """Credit one line in its own transaction: a bad line is rejected with its reason, the others go on."""
    account_id = line.get("account_id") if isinstance(line.get("account_id"), str) else None
    try:
        payload = _batch_credit(order, number, line, now)
        async with sessions() as session, session.begin():
            done = await credit(session, tenant_id, payload, now)
    except Refused as exc:
        return LineOutcome(number, account_id, LineStatus.REJECTED, problem=exc.problem, reason=exc.reason)
    except ValidationError as exc:
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return LineOutcome(number, account_id, LineStatus.REJECTED, problem="invalid_line", reason=reason)
    status = LineStatus.ACCEPTED if done.new else LineStatus.DUPLICATE
    return LineOutcome(number, account_id, status, event_id=done.event.event_id)
