"""The channels of one tenant, built once from its configuration and kept for the worker's life (the
WeChat token cache and the HTTP connection pool live as long as they do)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from amiflow_runtime.clock import Clock

from notify.adapters.channels.base import ChannelAdapter, TenantChannels
from notify.adapters.channels.sms import SmsChannel
from notify.adapters.channels.smtp import SmtpChannel
from notify.adapters.channels.webhook import WebhookChannel
from notify.adapters.channels.wechat import WechatChannel, WechatTokens
from notify.core.model import Channel


@dataclass(frozen=True)
class ChannelSet:
    """A tenant's adapters; a channel the tenant has not configured is None. Webhooks always exist."""

    email: SmtpChannel | None
    sms: SmsChannel | None
    wechat: WechatChannel | None
    webhook: WebhookChannel

    def offers(self, channel: Channel) -> bool:
        """Whether a message on ``channel`` can be sent for this tenant at all."""
        return channel is Channel.WEBHOOK or getattr(self, channel.value) is not None

    def adapter_for(self, channel: Channel, *, webhook_secret: bytes | None = None) -> ChannelAdapter | None:
        """The adapter that sends on ``channel``, None when the tenant has none; a webhook needs its
        subscription's secret."""
        if channel is Channel.WEBHOOK:
            if webhook_secret is None:
                raise ValueError("a webhook is sent with its subscription's signing secret")
            return self.webhook.signed_with(webhook_secret)
        adapters: dict[Channel, ChannelAdapter | None] = {
            Channel.EMAIL: self.email, Channel.SMS: self.sms, Channel.WECHAT: self.wechat}
        return adapters[channel]


def channel_set(config: TenantChannels, http: httpx.AsyncClient, *, wechat_tokens: WechatTokens,
                clock: Clock | None = None) -> ChannelSet:
    """The adapters of one tenant. ``http`` and ``wechat_tokens`` are shared by all tenants and owned by
    the caller (who closes ``http``)."""
    return ChannelSet(
        email=SmtpChannel(config.email, clock) if config.email else None,
        sms=SmsChannel(config.sms, http) if config.sms else None,
        wechat=WechatChannel(config.wechat, http, wechat_tokens) if config.wechat else None,
        webhook=WebhookChannel(config.webhook, http, clock),
    )
