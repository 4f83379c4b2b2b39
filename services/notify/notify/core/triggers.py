"""Which events call for a notification, and to whom.

Channels, templates, preferences and throttling arrive with the notifications issue; this is the
routing they start from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from amiflow_schemas import EventPayload
from amiflow_schemas.events.alarms import AlarmCleared, AlarmRaised
from amiflow_schemas.events.billing import BalanceDepleted, BalanceLow, BalanceRestored, PaymentReceived
from amiflow_schemas.events.commands import CommandEscalated, CommandFailed

# Every event type the handler acts on (a trigger record, the balance state, or a notification): the worker
# passes over the rest of its topics unread — the ledger's charges above all (see amiflow_runtime.pipeline).
# tests/unit/test_triggers.py holds this to trigger_for and subject_of.
NOTIFIED_EVENTS = frozenset(t.EVENT_TYPE for t in (
    BalanceLow, BalanceDepleted, BalanceRestored, PaymentReceived, AlarmRaised, AlarmCleared, CommandFailed,
    CommandEscalated))


class Audience(StrEnum):
    """Who is told."""

    CUSTOMER = "customer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Trigger:
    """A notification to prepare: for whom, about which subject."""

    audience: Audience
    subject_id: str


def trigger_for(payload: EventPayload) -> Trigger | None:
    """The notification an event calls for, or None."""
    if isinstance(payload, BalanceLow | BalanceDepleted | BalanceRestored | PaymentReceived):
        return Trigger(Audience.CUSTOMER, payload.account_id)
    if isinstance(payload, AlarmRaised | AlarmCleared):
        return Trigger(Audience.OPERATOR, payload.subject_id)
    if isinstance(payload, CommandFailed):
        return Trigger(Audience.OPERATOR, payload.device_id)
    return None
