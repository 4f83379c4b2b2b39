"""SMS through a generic HTTP provider: a thin adapter in front of Aliyun/Tencent-style SMS APIs.

Chinese SMS providers send only pre-approved templates (模板) under a registered signature (签名), so
a message is a template id and its parameters, never free text. This adapter speaks one small
contract; a tenant whose provider speaks another gets its own small adapter (or a relay) later.

The provider contract::

    POST {endpoint}
    Content-Type: application/json
    {api_key_header}: {api_key}             (X-Api-Key unless configured otherwise)
    Idempotency-Key: {the notification id}  (the same on every attempt of one notification)

    {"phone": "+8613800138000", "template_id": "SMS_123456789",
     "params": {"amount": "8.20"}, "sign_name": "滨江水务"}

    2xx  {"message_id": "…", …}      accepted; the id is kept in the delivery log
                                     (the field is `message_id_field`)
    429, 408, 5xx                    busy or down: the message is sent again later
    other 4xx                        refused for good (bad number, template or key)

A 2xx without a message id breaks the contract (Aliyun answers 200 with an error code in the body): it
is not sent again, because a duplicate SMS costs the tenant money and the customer patience; the log
shows the answer.
"""

from __future__ import annotations

import httpx

from notify.adapters.channels.base import SmsConfig, delivered, refused, retry_later
from notify.adapters.channels.http import NO_ANSWER, exchange, unanswered
from notify.core.model import Channel, DeliveryOutcome, Message


class SmsChannel:
    """One tenant's SMS provider."""

    channel: Channel = Channel.SMS

    def __init__(self, config: SmsConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    async def send(self, message: Message) -> DeliveryOutcome:
        config = self.config
        key = config.api_key.get_secret_value()
        if not message.template_id:
            return refused("no SMS template for this message: providers send approved templates only")
        request = {"phone": message.address, "template_id": message.template_id,
                   "params": message.parameters, "sign_name": config.sign_name}
        headers = {config.api_key_header: key}
        if message.idempotency_key:
            headers["Idempotency-Key"] = message.idempotency_key
        try:
            reply = await exchange(self.http, "POST", str(config.endpoint), timeout_s=config.timeout_s,
                                   json=request, headers=headers)
        except NO_ANSWER as exc:
            return unanswered(exc, "SMS provider", config.timeout_s, key)
        if reply.succeeded:
            answer = reply.json_object() or {}
            message_id = answer.get(config.message_id_field)
            if isinstance(message_id, str | int) and not isinstance(message_id, bool) and str(message_id):
                return delivered(reply.summary(), str(message_id), key)
            return refused(f"accepted without a message id, not sent again: {reply.summary()}", key)
        if reply.transient:
            return retry_later(reply.summary(), key)
        return refused(reply.summary(), key)
