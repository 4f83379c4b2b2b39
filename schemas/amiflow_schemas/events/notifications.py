"""Messages notify delivered to customers, operators and webhooks."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, PositiveInt, StringConstraints

from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import Identifier


class NotificationChannel(StrEnum):
    """How a message was delivered."""

    EMAIL = "email"
    SMS = "sms"
    WECHAT = "wechat"
    WEBHOOK = "webhook"


class NotificationTemplate(StrEnum):
    """Which message was sent; one per triggering event kind."""

    BALANCE_LOW = "balance_low"
    BALANCE_DEPLETED = "balance_depleted"
    BALANCE_RESTORED = "balance_restored"
    ALARM_RAISED = "alarm_raised"
    COMMAND_FAILED = "command_failed"
    BILL_ISSUED = "bill_issued"
    # Additions within v1 (a consumer that does not know one keeps the raw value in its logs):
    LOW_BALANCE_REMINDER = "low_balance_reminder"  # daily while an account stays low
    PAYMENT_RECEIPT = "payment_receipt"
    ALARM_CLEARED = "alarm_cleared"
    ALARM_DIGEST = "alarm_digest"  # many operator alarms at once, in one message


# Ledgers keep events for years: the event names the contact, never stores its full address.
MaskedAddress = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LanguageTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]


class NotificationSent(EventPayload):
    """A provider accepted a message for delivery."""

    EVENT_TYPE: ClassVar[str] = "NotificationSent"
    EVENT_VERSION: ClassVar[int] = 1

    notification_id: UUID
    recipient_id: Identifier  # a contact, operator or webhook subscription; the Kafka key
    account_id: Identifier | None
    channel: NotificationChannel
    template: NotificationTemplate
    language: LanguageTag  # e.g. "zh-CN", "en"
    destination_masked: MaskedAddress  # e.g. "138****5678", "l***@example.com"
    trigger_event_id: UUID  # the event that caused the message, so reminders can be throttled
    provider: Identifier  # e.g. "smtp", "aliyun-sms"
    provider_message_id: Identifier | None
    sent_at: AwareDatetime
    attempt: PositiveInt
