"""Prepaid accounts: opening, settings, the meters they pay for, closing (billing.md "Accounts").

These travel on the ledger topic, keyed by account, so a consumer replaying it from the start
sees each account opened and each meter linked before the charges that depend on them.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import AwareDatetime, Field, NonNegativeInt, model_validator

from amiflow_schemas.payload import EventPayload, PayloadPart
from amiflow_schemas.primitives import (
    CurrencyCode,
    ExactDecimal,
    Identifier,
    NonNegativeDecimal,
    PositiveDecimal,
    Text,
    TimeZoneName,
    Utility,
)


class CustomerKind(StrEnum):
    """Who holds the account."""

    HOUSEHOLD = "household"
    MERCHANT = "merchant"
    ROOM = "room"  # a rented room, dormitory or apartment unit


class ExemptionWindow(PayloadPart):
    """A time in which supply must not be cut off whatever the balance (the commands service honours it)."""

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Text

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.starts_at >= self.ends_at:
            raise ValueError("an exemption window starts before it ends")
        return self


class AccountSettings(PayloadPart):
    """The rules an account's balance is watched and its tiers are sized by."""

    credit_limit: NonNegativeDecimal  # overdraft allowed: depleted at balance <= -credit_limit
    low_balance_amount: NonNegativeDecimal
    low_balance_days: Annotated[NonNegativeInt, Field(le=366)]  # x average daily cost of the last 7 days
    restore_threshold: ExactDecimal  # a depleted balance is restored above this (default 0)
    tier_size_factor: PositiveDecimal  # multiplies tier bounds, e.g. 1.5 for households over five people
    cut_off_policy_id: Identifier | None  # the commands service's policy; billing only names it
    exemptions: Annotated[tuple[ExemptionWindow, ...], Field(max_length=32)]

    @model_validator(mode="after")
    def _restore_above_depleted(self) -> Self:
        # Restored must be a state the balance can reach without being depleted again at once.
        if self.restore_threshold < -self.credit_limit:
            raise ValueError("restore_threshold must be at least -credit_limit")
        return self


class AccountOpened(EventPayload):
    """A prepaid account was opened; its balance starts at zero."""

    EVENT_TYPE: ClassVar[str] = "AccountOpened"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    customer_id: Identifier
    customer_kind: CustomerKind
    currency: CurrencyCode
    time_zone: TimeZoneName  # the tenant's; local days, months and years are taken in it
    billing_year_start: date  # anchors billing-year tier periods
    settings: AccountSettings
    opened_at: AwareDatetime


class AccountSettingsChanged(EventPayload):
    """An account's settings were replaced as a whole (credit limit, low-balance rule, exemptions …)."""

    EVENT_TYPE: ClassVar[str] = "AccountSettingsChanged"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    settings: AccountSettings
    changed_at: AwareDatetime
    changed_by: Identifier


class AccountCloseReason(StrEnum):
    """Why an account was closed."""

    MOVE_OUT = "move_out"
    OPERATOR = "operator"


class AccountClosed(EventPayload):
    """An account was closed; nothing is charged or credited to it afterwards."""

    EVENT_TYPE: ClassVar[str] = "AccountClosed"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    reason: AccountCloseReason
    final_balance: ExactDecimal  # 0 after a move-out refund; negative when arrears remain
    currency: CurrencyCode
    closed_at: AwareDatetime


class LinkReason(StrEnum):
    """Why a meter started or stopped being paid for by an account."""

    CONNECTED = "connected"  # a new supply, or a new customer moving in
    ROOM_CHANGE = "room_change"
    METER_REPLACED = "meter_replaced"
    MOVE_OUT = "move_out"
    OPERATOR = "operator"


class MeterLinkedToAccount(EventPayload):
    """From ``linked_at`` the account pays for the meter's consumption at the named tariff."""

    EVENT_TYPE: ClassVar[str] = "MeterLinkedToAccount"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    meter_id: Identifier
    utility: Utility
    tariff_id: Identifier
    linked_at: AwareDatetime
    reason: LinkReason
    previous_account_id: Identifier | None  # the account it came from on a room change


class MeterUnlinkedFromAccount(EventPayload):
    """From ``unlinked_at`` the account no longer pays for the meter."""

    EVENT_TYPE: ClassVar[str] = "MeterUnlinkedFromAccount"
    EVENT_VERSION: ClassVar[int] = 1

    account_id: Identifier
    meter_id: Identifier
    utility: Utility
    unlinked_at: AwareDatetime
    reason: LinkReason
    next_account_id: Identifier | None  # the account it went to on a room change
