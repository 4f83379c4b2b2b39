"""The channels' pure rules: how an e-mail is written, what a provider's refusal means, what may be
logged, how tokens are kept, and the configuration an operator writes."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from decimal import Decimal

import aiosmtplib
import httpx
import pytest
from notify.adapters.channels import TENANT_CHANNELS, SmtpConfig, TenantChannels, WechatTokens, channel_set
from notify.adapters.channels.base import ANSWER_LIMIT, answer
from notify.adapters.channels.smtp import email_message, message_id, smtp_failure
from notify.adapters.channels.webhook import webhook_body
from notify.adapters.channels.wechat import client_msg_id
from notify.core.model import Channel, Message
from pydantic import ValidationError

SENDER = SmtpConfig(host="smtp.example.com", from_address="notify@water.example.com", from_name="滨江水务")
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def mail(subject: str = "余额不足提醒", html: str | None = "<p>余额 8.20 元</p>", key: str = "k-1") -> Message:
    return Message(channel=Channel.EMAIL, address="zhang.wei@example.com", subject=subject,
                   text="您的余额仅剩 8.20 元。", html=html, idempotency_key=key)


def test_an_email_is_seven_bit_on_the_wire_and_reads_back_in_chinese() -> None:
    wire = email_message(mail(), SENDER, NOW).as_bytes()

    assert wire.isascii()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert parsed["Subject"] == "余额不足提醒"
    assert parsed["From"].addresses[0].display_name == "滨江水务"
    assert parsed.get_body(("plain",)).get_content().strip() == "您的余额仅剩 8.20 元。"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>余额 8.20 元</p>"
    assert parsed["Auto-Submitted"] == "auto-generated"


def test_an_email_without_html_is_plain_text_only() -> None:
    written = email_message(mail(html=None), SENDER, NOW)

    assert written.get_content_type() == "text/plain"


def test_a_line_break_in_a_subject_is_folded_not_injected() -> None:
    written = email_message(mail(subject="余额不足\r\nBcc: everyone@example.com"), SENDER, NOW)

    assert written["Subject"] == "余额不足 Bcc: everyone@example.com"
    assert written["Bcc"] is None


def test_the_message_id_follows_the_idempotency_key() -> None:
    key = "5b0f2c53-43c4-4a3b-9a9d-0e7f1c0de001"

    assert message_id(key, "notify@water.example.com") == "<5b0f2c5343c44a3b9a9d0e7f1c0de001@water.example.com>"
    assert message_id("odd key/1", "notify@water.example.com") == "<odd-key-1@water.example.com>"
    assert message_id("", "n@water.example.com") != message_id("", "n@water.example.com")


def refused_recipient(code: int) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, "no", "a@example.com")])


@pytest.mark.parametrize(("failure", "retryable"), [
    (refused_recipient(550), False),
    (refused_recipient(452), True),
    (aiosmtplib.SMTPDataError(554, "message refused as spam"), False),
    (aiosmtplib.SMTPSenderRefused(451, "greylisted", "notify@water.example.com"), True),
    (aiosmtplib.SMTPAuthenticationError(535, "authentication failed"), False),
    (aiosmtplib.SMTPConnectResponseError(421, "too many connections"), True),
    (aiosmtplib.SMTPServerDisconnected("Connection lost"), True),
    (aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"), True),
    (ConnectionRefusedError(111, "Connect call failed"), True),
    (aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."), False),
])
def test_an_smtp_failure_is_retried_only_when_it_is_temporary(failure: Exception, retryable: bool) -> None:
    outcome = smtp_failure(failure, "smtp.example.com", 30)

    assert not outcome.delivered
    assert outcome.retryable is retryable


def test_an_answer_blanks_every_secret_and_keeps_at_most_500_characters() -> None:
    text = answer("key=s3cr3t-key token=tok-123 " + "x" * 1000, "s3cr3t-key", "tok-123", "")

    assert "s3cr3t-key" not in text and "tok-123" not in text
    assert len(text) == ANSWER_LIMIT
    assert answer("short", "") == "short"


def test_a_webhook_body_is_compact_utf8_json_with_amounts_as_strings() -> None:
    body = webhook_body({"customer": "张伟", "balance": Decimal("8.20")})

    assert body == '{"customer":"张伟","balance":"8.20"}'.encode()


def test_the_client_msg_id_fits_wechats_32_characters() -> None:
    assert client_msg_id("7c1f0b2e-3d4a-4b5c-8d6e-9f0a1b2c3d4e") == "7c1f0b2e3d4a4b5c8d6e9f0a1b2c3d4e"
    assert len(client_msg_id("notification/" + "x" * 100)) == 32


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_is_kept_until_its_expiry_less_the_margin_then_fetched_again() -> None:
    clock, fetched = FakeMonotonic(), []

    async def fetch() -> tuple[str, float]:
        fetched.append(clock.now)
        return f"token-{len(fetched)}", 7200.0

    tokens = WechatTokens(clock, margin_s=300)
    assert await tokens.get("wx1", fetch) == "token-1"
    clock.now += 7200 - 300 - 1
    assert await tokens.get("wx1", fetch) == "token-1"
    clock.now += 2
    assert await tokens.get("wx1", fetch) == "token-2"
    tokens.retire("wx1", "token-1")  # an old token refused late does not throw away the new one
    assert await tokens.get("wx1", fetch) == "token-2"
    tokens.retire("wx1", "token-2")
    assert await tokens.get("wx1", fetch) == "token-3"
    assert await tokens.get("wx2", fetch) == "token-4"  # per app id


OPERATOR_JSON = {
    "riverside": {
        "email": {"host": "smtp.exmail.qq.com", "port": 465, "security": "tls", "username": "notify@rw.example.com",
                  "password": "smtp-pass-1", "from_address": "notify@rw.example.com", "from_name": "滨江水务"},
        "sms": {"endpoint": "https://sms-relay.rw.example.com/v1/sms", "api_key": "sms-key-2", "sign_name": "滨江水务"},
        "wechat": {"app_id": "wx5f2c8d1e9a7b3c40", "app_secret": "wechat-secret-3"},
    },
    "hillside": {},
}


def test_tenant_channels_parse_from_one_json_object_and_never_print_their_secrets() -> None:
    tenants = TENANT_CHANNELS.validate_json(json.dumps(OPERATOR_JSON))

    riverside, hillside = tenants["riverside"], tenants["hillside"]
    assert riverside.wechat is not None and str(riverside.wechat.base_url) == "https://api.weixin.qq.com/"
    assert hillside == TenantChannels() and hillside.email is None and hillside.webhook.timeout_s == 10
    shown = repr(tenants) + str(tenants)
    assert not any(secret in shown for secret in ("smtp-pass-1", "sms-key-2", "wechat-secret-3"))
    assert riverside.secrets() == {"email.password": "smtp-pass-1", "sms.api_key": "sms-key-2",
                                   "wechat.app_secret": "wechat-secret-3"}


@pytest.mark.parametrize("broken", [
    {"email": {"host": "smtp.example.com", "from_address": "n@example.com", "username": "n"}},  # no password
    {"email": {"host": "smtp.example.com", "from_address": "not an address"}},
    {"sms": {"endpoint": "ftp://sms.example.com", "api_key": "k", "sign_name": "滨江水务"}},
    {"wechat": {"app_id": "wx1", "app_secret": ""}},
    {"webhook": {"timeout_s": 0}},
    {"fax": {}},
])
def test_a_broken_channel_configuration_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TenantChannels.model_validate(broken)


async def test_a_tenant_offers_only_the_channels_it_configured_and_webhooks_always() -> None:
    tenants = TENANT_CHANNELS.validate_python(OPERATOR_JSON)
    async with httpx.AsyncClient() as http:
        riverside = channel_set(tenants["riverside"], http, wechat_tokens=WechatTokens())
        hillside = channel_set(tenants["hillside"], http, wechat_tokens=WechatTokens())

    assert all(riverside.offers(channel) for channel in Channel)
    assert [channel for channel in Channel if hillside.offers(channel)] == [Channel.WEBHOOK]
    assert hillside.adapter_for(Channel.SMS) is None
    email_adapter = riverside.adapter_for(Channel.EMAIL)
    assert email_adapter is not None and email_adapter.channel is Channel.EMAIL
    webhook = hillside.adapter_for(Channel.WEBHOOK, webhook_secret=b"whsec-1")
    assert webhook is not None and webhook.channel is Channel.WEBHOOK
    with pytest.raises(ValueError, match="signing secret"):
        hillside.adapter_for(Channel.WEBHOOK)
