"""The words of notify: who is told (recipients and their preferences), what (a notification), over
which channel (a message), and what became of it (a delivery outcome).

The pure core turns an event into notifications (``planning``), renders each into a message
(``templates``); the adapters keep the delivery log and hand messages to the channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any
from uuid import UUID


class Channel(StrEnum):
    """How a message travels."""

    EMAIL = "email"  # SMTP
    SMS = "sms"  # an SMS provider's HTTP API (template id + parameters)
    WECHAT = "wechat"  # WeChat template messages to an official-account follower (openid)
    WEBHOOK = "webhook"  # an integrator's HTTPS endpoint, signed with HMAC-SHA256


class Audience(StrEnum):
    """Whom a topic is for."""

    CUSTOMER = "customer"  # the account's contacts
    OPERATOR = "operator"  # the tenant's operators by role and site
    INTEGRATOR = "integrator"  # webhook subscriptions


class Language(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"


class Topic(StrEnum):
    """What a notification is about; templates, preferences and opt-outs are per topic."""

    BALANCE_LOW = "balance_low"
    BALANCE_DEPLETED = "balance_depleted"
    BALANCE_RESTORED = "balance_restored"
    LOW_BALANCE_REMINDER = "low_balance_reminder"  # daily while the account stays low
    PAYMENT_RECEIPT = "payment_receipt"
    STATEMENT_ISSUED = "statement_issued"
    ALARM_RAISED = "alarm_raised"
    ALARM_CLEARED = "alarm_cleared"
    ALARM_DIGEST = "alarm_digest"  # many alarms at once: one message listing them
    COMMAND_FAILED = "command_failed"  # a cut-off or restore that failed or expired


class Urgency(StrEnum):
    ROUTINE = "routine"  # waits for the end of the recipient's quiet hours
    CRITICAL = "critical"  # goes out at any hour (a burst, a failed restore)


@dataclass(frozen=True)
class QuietHours:
    """Local hours in which routine messages wait, e.g. 21:00-08:00 (may span midnight)."""

    start: time
    end: time
    time_zone: str


@dataclass(frozen=True)
class Recipient:
    """One address of one contact, with that contact's preferences."""

    recipient_id: str  # the contact's id (an account contact, an operator, a webhook subscription)
    audience: Audience
    channel: Channel
    address: str  # e-mail address, E.164 phone number, WeChat openid, or webhook URL
    language: Language = Language.ZH_CN
    quiet_hours: QuietHours | None = None
    opted_out: frozenset[Topic] = frozenset()  # topics this contact does not want (critical ones still go)
    secret_ref: str | None = None  # a webhook subscription's signing secret, by name (never the secret itself)
    time_zone: str | None = None  # IANA zone for times printed in messages; None: the quiet hours' or the tenant's


class BalanceStatus(StrEnum):
    """Where an account's balance stands, as notify last heard from billing (billing's BalanceStatus)."""

    NORMAL = "normal"
    LOW = "low"
    DEPLETED = "depleted"


@dataclass(frozen=True)
class Subject:
    """What an event is about, for whom, how urgent, and the key that lets it be told only once."""

    topic: Topic
    audiences: frozenset[Audience]
    subject_id: str  # the account, meter, device or district
    account_id: str | None
    urgency: Urgency
    dedupe_key: str  # the same for every delivery and re-emission of the same fact (see planning)
    occurred_at: datetime  # event time: dedupe days and template times are taken from it, not the clock


@dataclass(frozen=True)
class Notification:
    """One message to prepare for one recipient, or the reason it is suppressed."""

    notification_id: UUID  # derived from the cause and the recipient: a redelivered event plans the same ids
    tenant_id: str
    topic: Topic
    recipient: Recipient
    subject_id: str  # the account, meter, device or district it is about
    account_id: str | None
    dedupe_key: str  # one notification per key (e.g. one low-balance reminder per account per local day)
    urgency: Urgency
    not_before: datetime  # now, or the end of the recipient's quiet hours
    cause_event_id: UUID
    created_at: datetime
    context: dict[str, Any] = field(default_factory=dict)  # what the template may print
    suppressed: str | None = None  # why it will not be sent (opted out, duplicate, no address …)


@dataclass(frozen=True)
class Message:
    """A rendered notification, ready for its channel."""

    channel: Channel
    address: str
    subject: str  # e-mail subject; a short title elsewhere
    text: str  # the plain text (e-mail body, SMS text, WeChat first line)
    html: str | None = None  # e-mail alternative
    template_id: str | None = None  # the SMS or WeChat provider's template
    parameters: dict[str, str] = field(default_factory=dict)  # the provider template's fields
    payload: dict[str, Any] | None = None  # a webhook's JSON body
    idempotency_key: str = ""  # the notification id: providers and receivers can drop repeats


@dataclass(frozen=True)
class DeliveryOutcome:
    """What a channel answered."""

    delivered: bool
    retryable: bool  # False: sending again cannot help (bad address, rejected template)
    provider_answer: str  # status line or error, truncated, never credentials
    provider_message_id: str | None = None
