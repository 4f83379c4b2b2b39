"""Rendering notifications into e-mail, SMS, WeChat and webhook messages, in Chinese and English."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.alarms import AlarmSeverity
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.payload import EventPayload
from notify.core.model import Audience, Channel, Language, Notification, Recipient, Subject, Topic
from notify.core.planning import digest, plan, subject_of
from notify.core.reminders import reminder_subject
from notify.core.subjects import event_context
from notify.core.templates import TemplateFailed, render

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 7, 2, 9, 0, tzinfo=SHANGHAI)
_EXAMPLES = example_payloads()
_ADDRESSES = {Channel.EMAIL: "li@example.com", Channel.SMS: "+8613812345678",
              Channel.WECHAT: "oAbCdEfGhIjKlMnOpQrStUvWxYz0", Channel.WEBHOOK: "https://integrator.example/hook"}


def _recipient(channel: Channel, language: Language, audience: Audience, **changes: object) -> Recipient:
    fields: dict[str, object] = {"recipient_id": "R-1", "audience": audience, "channel": channel,
                                 "address": _ADDRESSES[channel], "language": language, **changes}
    return Recipient(**fields)  # type: ignore[arg-type]


def _planned(subject: Subject, payload: EventPayload, recipient: Recipient, cause: int = 1) -> Notification:
    return plan(subject, [recipient], tenant_id="tenant-demo", cause_event_id=UUID(int=cause), now=NOW,
                zone=SHANGHAI, context=event_context(payload))[0]


def _about(event_type: str) -> Callable[[Channel, Language], Notification]:
    def build(channel: Channel, language: Language) -> Notification:
        payload = _EXAMPLES[event_type]
        subject = subject_of(payload, zone=SHANGHAI)
        assert subject is not None
        audience = Audience.CUSTOMER if Audience.CUSTOMER in subject.audiences else Audience.OPERATOR
        return _planned(subject, payload, _recipient(channel, language, audience))
    return build


def _reminder_of(event_type: str) -> Callable[[Channel, Language], Notification]:
    def build(channel: Channel, language: Language) -> Notification:
        payload = _EXAMPLES[event_type]
        assert payload.EVENT_TYPE in ("BalanceLow", "BalanceDepleted")
        subject = reminder_subject(payload, NOW, SHANGHAI)  # type: ignore[arg-type]
        return _planned(subject, payload, _recipient(channel, language, Audience.CUSTOMER))
    return build


def _digest(channel: Channel, language: Language) -> Notification:
    # Webhooks are never digested; a digest re-addressed to one must still render.
    operator = _recipient(Channel.SMS if channel is Channel.WEBHOOK else channel, language, Audience.OPERATOR)
    pending = []
    for number, event_type in enumerate(["AlarmRaised", "AlarmCleared", "CommandEscalated", "AlarmRaised"]):
        payload = _EXAMPLES[event_type]
        if event_type == "AlarmRaised" and number:
            payload = payload.model_copy(update={"severity": AlarmSeverity.CRITICAL, "alarm_id": UUID(int=number)})
        subject = subject_of(payload, zone=SHANGHAI)
        assert subject is not None
        pending.append(_planned(subject, payload, operator, cause=number))
    gathered = digest(pending, now=NOW, window=timedelta(minutes=5), threshold=2)
    assert gathered is not None
    return replace(gathered.notification, recipient=_recipient(channel, language, Audience.OPERATOR))


CASES: dict[str, Callable[[Channel, Language], Notification]] = {
    "BalanceLow": _about("BalanceLow"),
    "BalanceDepleted": _about("BalanceDepleted"),
    "BalanceRestored": _about("BalanceRestored"),
    "PaymentReceived": _about("PaymentReceived"),
    "AlarmRaised": _about("AlarmRaised"),
    "AlarmCleared": _about("AlarmCleared"),
    "CommandEscalated": _about("CommandEscalated"),
    "reminder while low": _reminder_of("BalanceLow"),
    "reminder while depleted": _reminder_of("BalanceDepleted"),
    "digest": _digest,
}


def test_every_topic_but_the_future_statement_has_a_rendering_case() -> None:
    topics = {build(Channel.EMAIL, Language.EN).topic for build in CASES.values()}
    assert topics == set(Topic) - {Topic.STATEMENT_ISSUED}


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("case", list(CASES))
def test_every_topic_renders_for_every_channel(case: str, language: Language) -> None:
    for channel in Channel:
        notification = CASES[case](channel, language)
        message = render(notification, channel, sms_template_id="SMS_1001", wechat_template_id="WX-TPL-1")
        assert (message.channel, message.address) == (channel, _ADDRESSES[channel])
        assert message.subject and message.text and "\n" not in message.subject
        assert message.idempotency_key == str(notification.notification_id)
        assert "None" not in message.text, message.text
        _assert_shaped_for(channel, message.html, message.template_id, message.parameters, message.payload)


def _assert_shaped_for(channel: Channel, html: str | None, template_id: str | None, parameters: dict[str, str],
                       payload: dict[str, object] | None) -> None:
    if channel is Channel.EMAIL:
        assert html is not None and html.startswith("<!DOCTYPE html>")
    if channel is Channel.SMS:
        assert template_id == "SMS_1001" and parameters
    if channel is Channel.WECHAT:
        assert template_id == "WX-TPL-1"
        assert {"first", "keyword1", "keyword2", "remark"} <= parameters.keys()
    if channel is Channel.WEBHOOK:
        assert payload is not None and json.loads(json.dumps(payload)) == payload
    else:
        assert payload is None


def test_the_low_balance_email_in_chinese_and_english() -> None:
    chinese = render(CASES["BalanceLow"](Channel.EMAIL, Language.ZH_CN), Channel.EMAIL)
    english = render(CASES["BalanceLow"](Channel.EMAIL, Language.EN), Channel.EMAIL)
    assert chinese.subject == "余额不足提醒"
    assert "22.00元" in chinese.text and "2026-07-01 12:00" in chinese.text
    assert english.subject == "Low balance"
    assert "CNY 22.00" in english.text and "about 2 more day(s)" in english.text


def test_money_is_printed_to_the_cent_with_its_currency() -> None:
    notification = CASES["PaymentReceived"](Channel.SMS, Language.EN)
    odd = replace(notification, context={**notification.context,
                                         "event": {**notification.context["event"], "amount": "50.005"}})
    message = render(odd, Channel.SMS)
    assert "CNY 50.01" in message.text
    assert message.parameters["amount"] == "50.01"


def test_times_are_printed_in_the_recipients_zone() -> None:
    payload = _EXAMPLES["BalanceLow"]  # entered 2026-07-01 12:00 in Shanghai = 05:00 in London (BST)
    subject = subject_of(payload, zone=SHANGHAI)
    assert subject is not None
    london = _recipient(Channel.WECHAT, Language.EN, Audience.CUSTOMER, time_zone="Europe/London")
    message = render(_planned(subject, payload, london), Channel.WECHAT)
    assert message.parameters["keyword3"] == "2026-07-01 05:00"


def test_the_html_email_escapes_event_text_and_the_plain_text_keeps_it() -> None:
    notification = CASES["AlarmRaised"](Channel.EMAIL, Language.EN)
    hostile = replace(notification, context={**notification.context, "event": {
        **notification.context["event"], "description": "<script>alert(1)</script> & more"}})
    message = render(hostile, Channel.EMAIL)
    assert message.html is not None
    assert "<script>" not in message.html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in message.html
    assert "<script>alert(1)</script> & more" in message.text


def test_the_webhook_carries_who_what_and_the_events_fields() -> None:
    notification = CASES["BalanceLow"](Channel.WEBHOOK, Language.ZH_CN)
    payload = render(notification, Channel.WEBHOOK).payload
    assert payload is not None
    assert payload["notification_id"] == str(notification.notification_id)
    assert (payload["topic"], payload["tenant_id"], payload["subject_id"], payload["account_id"]) == (
        "balance_low", "tenant-demo", "ACC-0001", "ACC-0001")
    assert payload["event_type"] == "BalanceLow"
    assert payload["event"] == _EXAMPLES["BalanceLow"].model_dump(mode="json")


def test_a_template_missing_a_variable_fails_rather_than_half_renders() -> None:
    notification = CASES["BalanceLow"](Channel.SMS, Language.ZH_CN)
    event = {k: v for k, v in notification.context["event"].items() if k != "threshold"}
    with pytest.raises(TemplateFailed, match="threshold"):
        render(replace(notification, context={**notification.context, "event": event}), Channel.SMS)


def test_a_bad_amount_fails_the_template() -> None:
    notification = CASES["BalanceLow"](Channel.EMAIL, Language.EN)
    bad = replace(notification, context={**notification.context,
                                         "event": {**notification.context["event"], "balance": "a lot"}})
    with pytest.raises(TemplateFailed):
        render(bad, Channel.EMAIL)


def test_a_topic_without_templates_fails_with_the_reason() -> None:
    notification = replace(CASES["BalanceLow"](Channel.EMAIL, Language.EN), topic=Topic.STATEMENT_ISSUED)
    with pytest.raises(TemplateFailed, match=r"statement_issued\.en\.j2"):
        render(notification, Channel.EMAIL)
