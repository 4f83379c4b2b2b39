"""What an event is about: its topic, whom it is for, how urgent, and the key that tells it only once.

Dedupe keys name the fact, not the delivery: a redelivered event, or the same fact emitted again
with a new event id, gives the same key, and the notification log keeps one notification per
(tenant, key, recipient, channel).

- BalanceLow: ``low_balance:<account>:<local day of entered_at>`` in the tenant's zone. The daily
  reminder uses the same key, so an account told "low" this morning is not reminded again today.
- BalanceDepleted / BalanceRestored: one per episode, keyed by the instant billing entered it.
- PaymentReceived: one receipt per (payment channel, provider transaction), what billing credits once.
- AlarmRaised / AlarmCleared: one per alarm episode each (``alarm:<alarm id>:raised|cleared``).
- CommandEscalated: one per command outcome (``command:<command id>:failed|expired``).

Commands raises a CommandEscalated for every command that ends failed or expired, whoever
reported the end (its own timer or ingest). Notify tells operators from the escalation alone and
ignores the raw CommandFailed / CommandExpired: answering both would tell every failure twice,
and only the escalation carries the command's kind, reason and account.

No event announces a statement yet: Topic.STATEMENT_ISSUED is planned for when billing has one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_schemas import EventPayload
from amiflow_schemas.events.alarms import AlarmCleared, AlarmRaised, AlarmSeverity
from amiflow_schemas.events.billing import BalanceDepleted, BalanceLow, BalanceRestored, PaymentReceived
from amiflow_schemas.events.commands import CommandEscalated

from notify.core.model import Audience, Subject, Topic, Urgency

# Integrators subscribe to topics; whether a subscription wants one is the worker's selection.
CUSTOMER_FACING = frozenset({Audience.CUSTOMER, Audience.INTEGRATOR})
OPERATOR_FACING = frozenset({Audience.OPERATOR, Audience.INTEGRATOR})


def subject_of(payload: EventPayload, *, zone: ZoneInfo) -> Subject | None:
    """What ``payload`` calls for telling, or None; ``zone`` is the tenant's (for local days)."""
    if isinstance(payload, BalanceLow | BalanceDepleted | BalanceRestored | PaymentReceived):
        return _account_subject(payload, zone)
    if isinstance(payload, AlarmRaised):
        urgency = Urgency.CRITICAL if payload.severity is AlarmSeverity.CRITICAL else Urgency.ROUTINE
        return Subject(Topic.ALARM_RAISED, OPERATOR_FACING, payload.subject_id, None, urgency,
                       f"alarm:{payload.alarm_id}:raised", payload.detected_at)
    if isinstance(payload, AlarmCleared):
        return Subject(Topic.ALARM_CLEARED, OPERATOR_FACING, payload.subject_id, None, Urgency.ROUTINE,
                       f"alarm:{payload.alarm_id}:cleared", payload.cleared_at)
    if isinstance(payload, CommandEscalated):
        # Escalations exist only for failed or expired commands: an operator must act now.
        return Subject(Topic.COMMAND_FAILED, OPERATOR_FACING, payload.device_id, payload.account_id,
                       Urgency.CRITICAL, f"command:{payload.command_id}:{payload.outcome.value}",
                       payload.escalated_at)
    return None


def _account_subject(payload: BalanceLow | BalanceDepleted | BalanceRestored | PaymentReceived,
                     zone: ZoneInfo) -> Subject:
    account = payload.account_id
    if isinstance(payload, BalanceLow):
        key = low_balance_key(account, local_day(payload.entered_at, zone))
        return Subject(Topic.BALANCE_LOW, CUSTOMER_FACING, account, account, Urgency.ROUTINE, key,
                       payload.entered_at)
    if isinstance(payload, BalanceDepleted):
        # Supply may be cut off: the customer must hear it now, whatever the hour or an opt-out.
        return Subject(Topic.BALANCE_DEPLETED, CUSTOMER_FACING, account, account, Urgency.CRITICAL,
                       f"balance_depleted:{account}:{_instant(payload.depleted_at)}", payload.depleted_at)
    if isinstance(payload, BalanceRestored):
        return Subject(Topic.BALANCE_RESTORED, CUSTOMER_FACING, account, account, Urgency.ROUTINE,
                       f"balance_restored:{account}:{_instant(payload.restored_at)}", payload.restored_at)
    return Subject(Topic.PAYMENT_RECEIPT, CUSTOMER_FACING, account, account, Urgency.ROUTINE,
                   f"payment:{payload.channel.value}:{payload.provider_transaction_id}", payload.paid_at)


def low_balance_key(account_id: str, day: date) -> str:
    """The key shared by BalanceLow and the daily reminder: one low-balance message per account per local day."""
    return f"low_balance:{account_id}:{day.isoformat()}"


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    """The calendar day of ``instant`` on the tenant's wall clock."""
    return instant.astimezone(zone).date()


def event_context(payload: EventPayload) -> dict[str, Any]:
    """What templates and webhooks may print of an event: its type and its fields as JSON values.

    JSON values, not Python objects: the notification is stored and rendered later, perhaps by
    another worker after a restart, and a webhook carries the same fields.
    """
    return {"event_type": payload.EVENT_TYPE, "event": payload.model_dump(mode="json")}


def _instant(at: datetime) -> str:
    # In UTC, so the same instant reported with another offset still gives the same key.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
