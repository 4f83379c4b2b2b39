"""Webhooks to integrators: the message's JSON payload, signed so the receiver can trust it.

    POST {subscription URL}
    Content-Type: application/json
    User-Agent: amiflow-notify/1.0
    X-Amiflow-Timestamp: 1795000000                 (Unix seconds)
    X-Amiflow-Signature: hex(HMAC-SHA256(secret, timestamp + "." + body))
    X-Amiflow-Delivery: {the notification id}       (the same on every attempt: receivers drop repeats)

    {"event_type":"BalanceLow",…}                   (compact JSON, UTF-8)

2xx is delivered; 410 Gone means the subscription is gone; 408, 429 and 5xx (and no answer) are tried
again later; any other status is final. Redirects are not followed: a signed body is for the URL the
integrator registered.

The signing secret belongs to the subscription, so it travels with each send rather than with the
tenant's configuration: ``send(message, secret=…)``, or ``signed_with(secret)`` for the plain port.
"""

from __future__ import annotations

import httpx
from amiflow_runtime.clock import Clock, SystemClock
from pydantic_core import PydanticSerializationError, to_json

from notify.adapters.channels.base import ChannelAdapter, WebhookConfig, delivered, refused, retry_later
from notify.adapters.channels.http import NO_ANSWER, exchange, unanswered
from notify.core.model import Channel, DeliveryOutcome, Message
from notify.core.signing import webhook_signature


def webhook_body(payload: dict[str, object]) -> bytes:
    """Compact UTF-8 JSON; decimals, datetimes and UUIDs as strings (amounts keep their digits)."""
    return to_json(payload)


class WebhookChannel:
    """Webhooks of one tenant's subscriptions."""

    channel: Channel = Channel.WEBHOOK

    def __init__(self, config: WebhookConfig, http: httpx.AsyncClient, clock: Clock | None = None) -> None:
        self.config = config
        self.http = http
        self.clock = clock or SystemClock()

    def signed_with(self, secret: bytes) -> ChannelAdapter:
        """This channel as a plain ``ChannelAdapter`` for one subscription's secret."""
        return SignedWebhook(self, secret)

    async def send(self, message: Message, *, secret: bytes) -> DeliveryOutcome:
        visible_secret = secret.decode("utf-8", errors="ignore")
        if not secret:
            return refused("the subscription has no signing secret: an unsigned webhook is never sent")
        if message.payload is None:
            return refused("no webhook payload for this message")
        try:
            body = webhook_body(message.payload)
        except PydanticSerializationError as exc:
            return refused(f"the payload is not JSON: {exc}")
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {"Content-Type": "application/json", "User-Agent": self.config.user_agent,
                   "X-Amiflow-Timestamp": timestamp,
                   "X-Amiflow-Signature": webhook_signature(secret, timestamp, body),
                   "X-Amiflow-Delivery": message.idempotency_key}
        try:
            reply = await exchange(self.http, "POST", message.address, timeout_s=self.config.timeout_s,
                                   content=body, headers=headers)
        except NO_ANSWER as exc:
            return unanswered(exc, "webhook receiver", self.config.timeout_s, visible_secret)
        if reply.succeeded:
            return delivered(reply.summary(), None, visible_secret)
        if reply.status == 410:
            return refused(f"the subscription is gone: {reply.summary()}", visible_secret)
        if reply.transient:
            return retry_later(reply.summary(), visible_secret)
        if 300 <= reply.status < 400:
            return refused(f"redirects are not followed: {reply.summary()}", visible_secret)
        return refused(reply.summary(), visible_secret)


class SignedWebhook:
    """A webhook channel bound to one subscription's secret."""

    channel: Channel = Channel.WEBHOOK

    def __init__(self, webhook: WebhookChannel, secret: bytes) -> None:
        self._webhook = webhook
        self._secret = secret

    def __repr__(self) -> str:
        return "SignedWebhook(secret=***)"

    async def send(self, message: Message) -> DeliveryOutcome:
        return await self._webhook.send(message, secret=self._secret)
