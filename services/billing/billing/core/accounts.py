"""Prepaid accounts as the fold of their lifecycle events, and the decisions that produce those events.

A decision function checks the account's state and returns the event to append; ``evolve`` folds
an event into the account. The adapter persists the event and the folded account together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amiflow_schemas.events.accounts import (
    AccountClosed,
    AccountCloseReason,
    AccountOpened,
    AccountSettings,
    AccountSettingsChanged,
    CustomerKind,
    LinkReason,
    MeterLinkedToAccount,
    MeterUnlinkedFromAccount,
)
from amiflow_schemas.events.billing import AccountMeter
from amiflow_schemas.primitives import Utility

AccountEvent: TypeAlias = (AccountOpened | AccountSettingsChanged | MeterLinkedToAccount | MeterUnlinkedFromAccount
                          | AccountClosed)


class AccountError(ValueError):
    """A decision the account's state does not allow; the message says why."""


class AccountStatus(StrEnum):
    """Open accounts take charges and payments; closed ones take nothing."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class MeterLink:
    """A meter paid for by the account from ``linked_at`` until ``unlinked_at`` (None: still)."""

    meter_id: str
    utility: Utility
    tariff_id: str
    linked_at: datetime
    unlinked_at: datetime | None

    def active_at(self, at: datetime) -> bool:
        """True when the account pays for the meter at ``at``."""
        return self.linked_at <= at and (self.unlinked_at is None or at < self.unlinked_at)


@dataclass(frozen=True)
class Account:
    """One customer's unified prepaid account; its balance is the ledger's fold (see ledger.py)."""

    account_id: str
    customer_id: str
    customer_kind: CustomerKind
    currency: str
    time_zone: str
    billing_year_start: date
    settings: AccountSettings
    opened_at: datetime
    status: AccountStatus
    closed_at: datetime | None
    links: tuple[MeterLink, ...]  # every link ever, in link order: the audit trail of room changes

    @property
    def zone(self) -> ZoneInfo:
        """The tenant's time zone: local days, months and years are taken in it."""
        return ZoneInfo(self.time_zone)

    def meters_at(self, at: datetime) -> tuple[MeterLink, ...]:
        """The links in force at ``at``."""
        return tuple(link for link in self.links if link.active_at(at))

    def link_at(self, meter_id: str, at: datetime) -> MeterLink | None:
        """The meter's link in force at ``at``, if the account paid for it then."""
        return next((link for link in self.meters_at(at) if link.meter_id == meter_id), None)

    def account_meters(self, at: datetime) -> tuple[AccountMeter, ...]:
        """The meters in force at ``at`` as balance events name them, for the commands service."""
        return tuple(AccountMeter(meter_id=link.meter_id, utility=link.utility) for link in self.meters_at(at))

    def exempt_until(self, at: datetime) -> datetime | None:
        """The latest end of the exemption windows in force at ``at``; None when none is."""
        ends = [w.ends_at for w in self.settings.exemptions if w.starts_at <= at < w.ends_at]
        return max(ends, default=None)


def _require_open(account: Account) -> None:
    if account.status is not AccountStatus.OPEN:
        raise AccountError(f"account {account.account_id} is closed")


def open_account(account_id: str, customer_id: str, customer_kind: CustomerKind, currency: str, time_zone: str,
                 billing_year_start: date, settings: AccountSettings, at: datetime) -> AccountOpened:
    """Open an account with a zero balance; AccountError for an unknown time zone."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountError(f"unknown time zone {time_zone!r}") from None
    return AccountOpened(account_id=account_id, customer_id=customer_id, customer_kind=customer_kind,
                         currency=currency, time_zone=time_zone, billing_year_start=billing_year_start,
                         settings=settings, opened_at=at)


def change_settings(account: Account, settings: AccountSettings, at: datetime,
                    changed_by: str) -> AccountSettingsChanged:
    """Replace the account's settings as a whole."""
    _require_open(account)
    return AccountSettingsChanged(account_id=account.account_id, settings=settings, changed_at=at,
                                  changed_by=changed_by)


def link_meter(account: Account, meter_id: str, utility: Utility, tariff_id: str, at: datetime,
               reason: LinkReason, previous_account_id: str | None = None) -> MeterLinkedToAccount:
    """Make the account pay for a meter from ``at``; the caller unlinks it from any other account first."""
    _require_open(account)
    if at < account.opened_at:
        raise AccountError(f"account {account.account_id} was not open at {at.isoformat()}")
    if any(link.meter_id == meter_id and (link.unlinked_at is None or link.unlinked_at > at)
           for link in account.links):
        raise AccountError(f"meter {meter_id} is already linked to account {account.account_id}")
    return MeterLinkedToAccount(account_id=account.account_id, meter_id=meter_id, utility=utility,
                                tariff_id=tariff_id, linked_at=at, reason=reason,
                                previous_account_id=previous_account_id)


def unlink_meter(account: Account, meter_id: str, at: datetime, reason: LinkReason,
                 next_account_id: str | None = None) -> MeterUnlinkedFromAccount:
    """Stop the account paying for a meter from ``at``."""
    _require_open(account)
    link = account.link_at(meter_id, at)
    if link is None or link.unlinked_at is not None:
        raise AccountError(f"meter {meter_id} is not linked to account {account.account_id} at {at.isoformat()}")
    return MeterUnlinkedFromAccount(account_id=account.account_id, meter_id=meter_id, utility=link.utility,
                                    unlinked_at=at, reason=reason, next_account_id=next_account_id)


def close_account(account: Account, reason: AccountCloseReason, final_balance: Decimal, at: datetime) -> AccountClosed:
    """Close the account; every meter must have been unlinked first."""
    _require_open(account)
    if account.meters_at(at):
        raise AccountError(f"account {account.account_id} still pays for meters; unlink them first")
    return AccountClosed(account_id=account.account_id, reason=reason, final_balance=final_balance,
                         currency=account.currency, closed_at=at)


def evolve(account: Account | None, event: AccountEvent) -> Account:
    """The account after one lifecycle event (rebuilds accounts when the ledger topic is replayed)."""
    if isinstance(event, AccountOpened):
        if account is not None:
            raise AccountError(f"account {event.account_id} is already open")
        return Account(event.account_id, event.customer_id, event.customer_kind, event.currency, event.time_zone,
                       event.billing_year_start, event.settings, event.opened_at, AccountStatus.OPEN, None, ())
    if account is None:
        raise AccountError(f"account {event.account_id} has not been opened")
    if isinstance(event, AccountSettingsChanged):
        return replace(account, settings=event.settings)
    if isinstance(event, MeterLinkedToAccount):
        link = MeterLink(event.meter_id, event.utility, event.tariff_id, event.linked_at, None)
        return replace(account, links=(*account.links, link))
    if isinstance(event, MeterUnlinkedFromAccount):
        links = tuple(replace(link, unlinked_at=event.unlinked_at)
                      if link.meter_id == event.meter_id and link.unlinked_at is None else link
                      for link in account.links)
        return replace(account, links=links)
    return replace(account, status=AccountStatus.CLOSED, closed_at=event.closed_at)
