"""E-mail through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.localkafka import free_port
from notify.adapters.channels import SmtpChannel, SmtpConfig, SmtpSecurity
from notify.core.model import Channel, Message

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
KEY = "5b0f2c53-43c4-4a3b-9a9d-0e7f1c0de001"
# Real Chinese text, full-width punctuation included: it is what customers receive.
SUBJECT = "【滨江水务】余额不足提醒：户号 1001 剩余 8.20 元"  # noqa: RUF001
TEXT = "尊敬的用户，您的水费余额仅剩 8.20 元，请及时充值，以免停水。\n滨江水务"  # noqa: RUF001
HTML = "<p>尊敬的用户，您的水费余额仅剩 <b>8.20 元</b>，请及时充值。</p>"  # noqa: RUF001


def channel(port: int, **changes: Any) -> SmtpChannel:
    config = SmtpConfig(host="127.0.0.1", port=port, security=SmtpSecurity.NONE,
                        from_address="notify@riverside-water.example.com", from_name="滨江水务", timeout_s=5)
    return SmtpChannel(config.model_copy(update=changes), FrozenClock(NOW))


def reminder(address: str = "zhang.wei@example.com") -> Message:
    return Message(channel=Channel.EMAIL, address=address, subject=SUBJECT, text=TEXT, html=HTML,
                   idempotency_key=KEY)


async def test_a_chinese_reminder_arrives_intact_with_its_text_and_html_parts(smtp_server: Any) -> None:
    server, port = smtp_server

    outcome = await channel(port).send(reminder())

    assert outcome.delivered and not outcome.retryable
    assert "queued" in outcome.provider_answer
    [received] = server.received
    assert received.sender == "notify@riverside-water.example.com"
    assert received.recipients == ["zhang.wei@example.com"]
    mail = received.mail
    assert mail["Subject"] == SUBJECT
    assert mail["From"].addresses[0].display_name == "滨江水务"
    assert mail["From"].addresses[0].addr_spec == "notify@riverside-water.example.com"
    assert mail.get_body(("plain",)).get_content().rstrip("\n") == TEXT
    assert mail.get_body(("html",)).get_content().rstrip("\n") == HTML
    assert mail["Message-ID"] == f"<{KEY.replace('-', '')}@riverside-water.example.com>" == outcome.provider_message_id
    assert mail["Date"].datetime == NOW


async def test_a_resent_message_carries_the_same_message_id(smtp_server: Any) -> None:
    server, port = smtp_server

    first = await channel(port).send(reminder())
    second = await channel(port).send(reminder())

    assert first.delivered and second.delivered
    assert [r.mail["Message-ID"] for r in server.received] == [first.provider_message_id] * 2


async def test_a_server_that_is_down_leaves_the_message_to_be_retried() -> None:
    outcome = await channel(free_port()).send(reminder())

    assert not outcome.delivered
    assert outcome.retryable
    assert "127.0.0.1" in outcome.provider_answer


async def test_a_recipient_refused_with_550_is_not_retried(smtp_server: Any) -> None:
    server, port = smtp_server
    server.refusals["gone@example.com"] = "550 5.1.1 <gone@example.com>: mailbox unavailable"

    outcome = await channel(port).send(reminder("gone@example.com"))

    assert not outcome.delivered and not outcome.retryable
    assert "550" in outcome.provider_answer and "mailbox unavailable" in outcome.provider_answer
    assert server.received == []


async def test_a_recipient_deferred_with_450_is_retried(smtp_server: Any) -> None:
    server, port = smtp_server
    server.refusals["busy@example.com"] = "450 4.2.1 mailbox busy, try later"

    outcome = await channel(port).send(reminder("busy@example.com"))

    assert not outcome.delivered and outcome.retryable
    assert "450" in outcome.provider_answer
