"""Notify's channel adapters: e-mail (SMTP), SMS and WeChat (HTTP providers) and signed webhooks.

Each turns a rendered ``Message`` into a ``DeliveryOutcome`` and never raises for a channel's failure;
``retryable`` says whether the same message may pass later. Build a tenant's set with ``channel_set``.
"""

from notify.adapters.channels.base import (
    TENANT_CHANNELS,
    ChannelAdapter,
    SmsConfig,
    SmtpConfig,
    SmtpSecurity,
    TenantChannels,
    WebhookConfig,
    WechatConfig,
)
from notify.adapters.channels.sms import SmsChannel
from notify.adapters.channels.smtp import SmtpChannel
from notify.adapters.channels.tenant import ChannelSet, channel_set
from notify.adapters.channels.webhook import SignedWebhook, WebhookChannel
from notify.adapters.channels.wechat import WechatChannel, WechatTokens

__all__ = [
    "TENANT_CHANNELS",
    "ChannelAdapter",
    "ChannelSet",
    "SignedWebhook",
    "SmsChannel",
    "SmsConfig",
    "SmtpChannel",
    "SmtpConfig",
    "SmtpSecurity",
    "TenantChannels",
    "WebhookChannel",
    "WebhookConfig",
    "WechatChannel",
    "WechatConfig",
    "WechatTokens",
    "channel_set",
]
