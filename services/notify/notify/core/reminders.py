"""The daily reminder while an account stays low or depleted.

Billing announces entering a state, not staying in it, so notify keeps each account's last
balance state (``balance_status_after``) and a timer asks every morning whether a reminder is due.

Billing emits no event when a low balance rises back to normal without having been depleted. A
payment on a low account therefore ends the reminders: a customer who has just paid must not be
told the next morning that the balance is low. If the payment was too small, the account stays
low in billing without a new BalanceLow and the customer hears again at depletion.
"""

from __future__ import annotations

from datetime import date, datetime, time
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from amiflow_schemas import EventPayload
from amiflow_schemas.events.billing import BalanceDepleted, BalanceLow, BalanceRestored, PaymentReceived

from notify.core.model import BalanceStatus, Subject, Topic, Urgency
from notify.core.subjects import CUSTOMER_FACING, local_day, low_balance_key

# Fixed forever: changing it would give a redelivered cause new notification ids.
NOTIFY_NAMESPACE = UUID("3b0a6f0e-7a52-4c1e-9d8b-5f2d1c9e6a47")

REMINDED_STATES = frozenset({BalanceStatus.LOW, BalanceStatus.DEPLETED})


def balance_status_after(status: BalanceStatus, payload: EventPayload) -> BalanceStatus:
    """The account's balance state once ``payload`` is known (billing emits Restored before a following Low)."""
    if isinstance(payload, BalanceLow):
        return BalanceStatus.LOW
    if isinstance(payload, BalanceDepleted):
        return BalanceStatus.DEPLETED
    if isinstance(payload, BalanceRestored):
        return BalanceStatus.NORMAL
    if isinstance(payload, PaymentReceived) and status is BalanceStatus.LOW:
        return BalanceStatus.NORMAL  # see the module docstring: no reminder right after paying
    return status


def reminder_due(last_state: BalanceStatus, last_reminded_on: date | None, now: datetime, zone: ZoneInfo,
                 morning: time, *, state_since: datetime | None = None) -> bool:
    """Whether a low or depleted account gets today's reminder: one per local day, from ``morning`` on.

    The day the account entered its state does not count: the BalanceLow or BalanceDepleted
    message itself told the customer that day.
    """
    if last_state not in REMINDED_STATES:
        return False
    local_now = now.astimezone(zone)
    if local_now.time() < morning:
        return False
    today = local_now.date()
    if last_reminded_on is not None and last_reminded_on >= today:
        return False
    return state_since is None or local_day(state_since, zone) < today


def reminder_subject(last_event: BalanceLow | BalanceDepleted, now: datetime, zone: ZoneInfo) -> Subject:
    """Today's reminder about the balance event that put the account in its state."""
    account = last_event.account_id
    return Subject(Topic.LOW_BALANCE_REMINDER, CUSTOMER_FACING, account, account, Urgency.ROUTINE,
                   low_balance_key(account, local_day(now, zone)), now)


def reminder_cause_id(tenant_id: str, account_id: str, day: date) -> UUID:
    """The cause id of a day's reminder (it has no event): the same day gives the same notification ids."""
    return uuid5(NOTIFY_NAMESPACE, f"low_balance_reminder|{tenant_id}|{account_id}|{day.isoformat()}")
