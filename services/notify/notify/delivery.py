"""The delivery loop: due notifications are rendered and handed to their channel, every attempt logged.

The notification log is the queue. A row is leased while it is sent (a crashed worker's lease runs
out and the row is sent again: at least once, with the notification id as the Message-ID, the SMS
idempotency key, the WeChat client_msg_id and the webhook delivery id, so receivers can drop a
repeat); a retryable failure waits with back-off; the last one dead-letters it with the reason; a
template that does not render fails the notification before anything is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from amiflow_runtime.clock import Clock
from amiflow_runtime.outbox import stage
from amiflow_schemas import new_envelope
from amiflow_schemas.events.notifications import NotificationChannel, NotificationSent, NotificationTemplate
from prometheus_client import Counter

from notify.adapters import db, store
from notify.adapters.channels import ChannelSet, WechatTokens, channel_set
from notify.adapters.store import Status
from notify.config import NotifySettings
from notify.core.model import Channel, DeliveryOutcome, Message, Notification, Topic
from notify.core.templates import TemplateFailed, render

log = logging.getLogger("notify.delivery")
OUTCOMES = Counter("amiflow_notify_deliveries_total", "Delivery attempts by channel and outcome",
                   ["channel", "outcome"])
PRODUCER = "notify"


def mask(address: str, channel: Channel) -> str:
    """An address as the event may keep it for years: enough to recognise, not to reuse."""
    if channel is Channel.EMAIL and "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if channel is Channel.SMS and len(address) > 7:
        return f"{address[:-8]}****{address[-4:]}"
    if channel is Channel.WEBHOOK:
        return address.split("?", 1)[0][:128]
    return f"{address[:4]}***" if len(address) > 4 else "***"


def template_of(topic: Topic) -> NotificationTemplate:
    """The template name the delivery event carries (a statement is a bill to the reader)."""
    return NotificationTemplate.BILL_ISSUED if topic is Topic.STATEMENT_ISSUED else NotificationTemplate(topic.value)


def backoff(attempt: int, settings: NotifySettings) -> timedelta:
    """The wait after ``attempt`` failed sends: doubling from retry_backoff_s, at most retry_backoff_max_s."""
    return timedelta(seconds=min(settings.retry_backoff_s * 2 ** (attempt - 1), settings.retry_backoff_max_s))


class Deliverer:
    """Sends due notifications over the tenants' channels; one per worker (shared HTTP pool, WeChat tokens)."""

    def __init__(self, runtime: Any, settings: NotifySettings, http: httpx.AsyncClient,
                 dead_letter: Callable[[Notification, str], Any] | None = None) -> None:
        self.runtime, self.settings, self.http = runtime, settings, http
        self.tokens = WechatTokens()
        self.channel_sets: dict[str, ChannelSet] = {}
        self.dead_letter = dead_letter

    @property
    def clock(self) -> Clock:
        clock: Clock = self.runtime.clock
        return clock

    def channels(self, tenant_id: str) -> ChannelSet:
        if tenant_id not in self.channel_sets:
            self.channel_sets[tenant_id] = channel_set(self.settings.channels_of(tenant_id), self.http,
                                                       wechat_tokens=self.tokens, clock=self.clock)
        return self.channel_sets[tenant_id]

    async def deliver_due(self) -> int:
        """One pass: lease what is due, send each, log each attempt; returns how many were attempted."""
        now = self.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            rows = await store.due(session, now, self.settings.delivery_batch)
            for row in rows:
                await store.lease(session, row.tenant_id, row.notification_id,
                                  now + timedelta(seconds=self.settings.lease_s))
        for row in rows:
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: Any) -> None:
        notification = store.notification_of(row)
        channel = notification.recipient.channel
        try:
            message = render(notification, channel, **self._template_ids(notification))
        except TemplateFailed as exc:
            log.error("notification %s (%s) not sent: its template failed: %s", row.notification_id,
                      notification.topic.value, exc)
            await self._end(row, Status.FAILED, f"template failed: {exc}")
            return
        adapter = await self._adapter(notification)
        if adapter is None:
            await self._end(row, Status.FAILED, f"no {channel.value} provider is configured for tenant "
                                                f"{notification.tenant_id}")
            return
        outcome = await adapter.send(message)
        await self._record(row, notification, message, outcome)

    def _template_ids(self, notification: Notification) -> dict[str, str | None]:
        ids = self.settings.provider_templates.get(notification.tenant_id, {})
        topic = notification.topic.value
        return {"sms_template_id": ids.get("sms", {}).get(topic),
                "wechat_template_id": ids.get("wechat", {}).get(topic)}

    async def _adapter(self, notification: Notification) -> Any:
        channels = self.channels(notification.tenant_id)
        if notification.recipient.channel is not Channel.WEBHOOK:
            return channels.adapter_for(notification.recipient.channel)
        async with self.runtime.sessions() as session:
            secret = await store.subscription_secret(session, notification.tenant_id,
                                                     notification.recipient.recipient_id)
        return None if secret is None else channels.adapter_for(Channel.WEBHOOK, webhook_secret=secret.encode())

    async def _end(self, row: Any, status: str, reason: str) -> None:
        async with self.runtime.sessions() as session, session.begin():
            await store.settle(session, row.tenant_id, row.notification_id, status, reason, self.clock.now())

    async def _record(self, row: Any, notification: Notification, message: Message,
                      outcome: DeliveryOutcome) -> None:
        now, attempt = self.clock.now(), row.attempts + 1
        if outcome.delivered:
            status, reason, next_at = Status.SENT, None, None
        elif outcome.retryable and attempt < self.settings.max_attempts:
            status, reason, next_at = Status.RETRYING, outcome.provider_answer, now + backoff(attempt, self.settings)
        elif outcome.retryable:
            status, reason, next_at = Status.DEAD, f"gave up after {attempt} attempts: {outcome.provider_answer}", None
        else:
            status, reason, next_at = Status.FAILED, outcome.provider_answer, None
        OUTCOMES.labels(message.channel.value, status).inc()
        log.info("notification %s of %s to %s via %s: %s (attempt %d)", row.notification_id, row.tenant_id,
                 notification.recipient.recipient_id, message.channel.value, status, attempt)
        async with self.runtime.sessions() as session, session.begin():
            await store.record_attempt(session, row.tenant_id, row.notification_id, attempt, now, outcome.delivered,
                                       outcome.retryable, outcome.provider_answer, status, reason, next_at,
                                       outcome.provider_message_id)
            if outcome.delivered:
                await stage(session, db.outbox, [self._sent(notification, outcome, attempt, now)], now)
        if status == Status.DEAD and self.dead_letter is not None:
            await self.dead_letter(notification, reason or "")
        if outcome.delivered:
            self.runtime.wake_relay()

    def _sent(self, n: Notification, outcome: DeliveryOutcome, attempt: int, now: datetime) -> Any:
        payload = NotificationSent(
            notification_id=n.notification_id, recipient_id=n.recipient.recipient_id, account_id=n.account_id,
            channel=NotificationChannel(n.recipient.channel.value), template=template_of(n.topic),
            language=n.recipient.language.value, destination_masked=mask(n.recipient.address, n.recipient.channel),
            trigger_event_id=n.cause_event_id, provider=n.recipient.channel.value,
            provider_message_id=(outcome.provider_message_id or None) and outcome.provider_message_id[:128],
            sent_at=now, attempt=attempt)
        return new_envelope(payload, event_id=n.notification_id, tenant_id=n.tenant_id, key=n.recipient.recipient_id,
                            occurred_at=now, recorded_at=now, producer=PRODUCER, causation_id=n.cause_event_id)
