"""The port every channel implements, each channel's configuration as an operator writes it, and the
rules all channels share for what may reach the delivery log.

Credentials are ``SecretStr``: they print as ``**********`` in reprs and logs and are unwrapped only
where a request is made. Outcomes are built through ``answer``, which blanks every credential it is
given and truncates, so no provider text longer than ``ANSWER_LIMIT`` and no secret reaches the log.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Protocol, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator

from notify.core.model import Channel, DeliveryOutcome, Message

ANSWER_LIMIT = 500
REDACTED = "***"


class ChannelAdapter(Protocol):
    """Hands one rendered message to its channel and says what became of it; never raises for a
    failure of the channel, only for a programming error."""

    channel: Channel

    async def send(self, message: Message) -> DeliveryOutcome: ...


def answer(text: str, *secrets: str) -> str:
    """The provider's answer as the delivery log may keep it: credentials blanked, at most 500 chars."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text if len(text) <= ANSWER_LIMIT else text[: ANSWER_LIMIT - 1] + "…"


def delivered(text: str, message_id: str | None, *secrets: str) -> DeliveryOutcome:
    return DeliveryOutcome(delivered=True, retryable=False, provider_answer=answer(text, *secrets),
                           provider_message_id=message_id)


def retry_later(text: str, *secrets: str) -> DeliveryOutcome:
    """Not delivered, and sending the same message again may well succeed (the channel is down or busy)."""
    return DeliveryOutcome(delivered=False, retryable=True, provider_answer=answer(text, *secrets))


def refused(text: str, *secrets: str) -> DeliveryOutcome:
    """Not delivered, and sending the same message again cannot help (bad address, rejected content,
    a credential the provider refuses): the delivery log shows why, the operator fixes and replays."""
    return DeliveryOutcome(delivered=False, retryable=False, provider_answer=answer(text, *secrets))


class _ChannelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# The whole exchange with a provider, connection included, ends within this many seconds.
TimeoutSeconds = Annotated[float, Field(gt=0, le=120)]
Credential = Annotated[SecretStr, Field(min_length=1)]


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # connect in plain, then STARTTLS before login (port 587); refuses to go on without it
    TLS = "tls"  # implicit TLS from the first byte (port 465)
    NONE = "none"  # no encryption: a relay on a trusted network only


class SmtpConfig(_ChannelConfig):
    """A tenant's outgoing mail server and the sender its customers see."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: Credential | None = None
    from_address: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    from_name: str = ""  # e.g. "滨江水务 Riverside Water"
    timeout_s: TimeoutSeconds = 30.0

    @model_validator(mode="after")
    def _login_is_whole(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together")
        return self


class SmsConfig(_ChannelConfig):
    """A generic HTTP SMS provider (see ``sms`` for the contract it must keep)."""

    endpoint: AnyHttpUrl
    api_key: Credential
    api_key_header: str = Field(default="X-Api-Key", pattern=r"^[A-Za-z0-9-]+$")
    sign_name: str = Field(min_length=1)  # the registered signature, e.g. "滨江水务"
    message_id_field: str = "message_id"  # where the provider's answer carries its message id
    timeout_s: TimeoutSeconds = 10.0


class WechatConfig(_ChannelConfig):
    """A tenant's WeChat official account (服务号), which sends template messages to its followers."""

    base_url: AnyHttpUrl = AnyHttpUrl("https://api.weixin.qq.com")
    app_id: str = Field(min_length=1)
    app_secret: Credential
    timeout_s: TimeoutSeconds = 10.0


class WebhookConfig(_ChannelConfig):
    """How webhooks leave; each subscription brings its own URL and signing secret."""

    timeout_s: TimeoutSeconds = 10.0
    user_agent: str = "amiflow-notify/1.0"


class TenantChannels(_ChannelConfig):
    """The channels one tenant has; a missing one is simply not offered to its recipients."""

    email: SmtpConfig | None = None
    sms: SmsConfig | None = None
    wechat: WechatConfig | None = None
    webhook: WebhookConfig = WebhookConfig()

    def secrets(self) -> dict[str, str]:
        """Each credential by name, for the settings' refusal of placeholder secrets."""
        found: dict[str, str] = {}
        if self.email and self.email.password:
            found["email.password"] = self.email.password.get_secret_value()
        if self.sms:
            found["sms.api_key"] = self.sms.api_key.get_secret_value()
        if self.wechat:
            found["wechat.app_secret"] = self.wechat.app_secret.get_secret_value()
        return found


# Every tenant's channels as an operator writes them in one JSON object: {"tenant id": {...}}.
TENANT_CHANNELS: TypeAdapter[dict[str, TenantChannels]] = TypeAdapter(dict[str, TenantChannels])
