"""Notifications rendered into messages: Jinja2 templates per topic and language, shaped per channel.

Templates are package data in ``notify/templates/``:

- ``<topic>.<language>.j2`` (e.g. ``balance_low.zh-CN.j2``) sets, at its top level:
  ``subject`` (one line: the e-mail subject, a title elsewhere), ``body`` (plain text, paragraphs
  separated by a blank line), ``sms`` (short text), ``sms_parameters`` (the SMS provider template's
  parameters) and ``wechat`` (``first``, ``keyword1`` …, ``remark``).
- ``labels.<language>.j2``: localised names of enum values, imported by the topic templates.
- ``email.html.j2``: the HTML alternative of every e-mail, built from subject and body (autoescaped).

A template sees the notification's context (``event_type``, ``event`` or ``alarms``,
``time_zone``) and ``language``, with the filters ``money(currency)``, ``amount``, ``local_time``
and ``days_covered(daily_cost)``. Every part is rendered before a message is built, under
StrictUndefined: a template that fails raises TemplateFailed, so nothing half-rendered is sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

from notify.core.model import Channel, Language, Message, Notification

CENT = Decimal("0.01")
_PARTS = ("subject", "body", "sms", "sms_parameters", "wechat")
# What a broken template or context can raise while rendering (a bad amount: InvalidOperation,
# an unknown zone: ZoneInfoNotFoundError, a KeyError).
_RENDER_ERRORS = (TemplateError, ValueError, TypeError, ArithmeticError, LookupError)


class TemplateFailed(Exception):
    """A notification could not be rendered; ``reason`` says why, for the delivery log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RenderedParts:
    """Everything a topic template says, before it is shaped for a channel."""

    subject: str
    body: str
    sms: str
    sms_parameters: dict[str, str]
    wechat: dict[str, str]


def render(notification: Notification, channel: Channel, *, sms_template_id: str | None = None,
           wechat_template_id: str | None = None) -> Message:
    """The message for ``channel``; SMS and WeChat carry the provider's template id and parameters."""
    parts = render_parts(notification)
    common: dict[str, Any] = {"channel": channel, "address": notification.recipient.address,
                              "subject": parts.subject, "idempotency_key": str(notification.notification_id)}
    if channel is Channel.EMAIL:
        return Message(**common, text=parts.body, html=_html(notification, parts))
    if channel is Channel.SMS:
        return Message(**common, text=parts.sms, template_id=sms_template_id, parameters=parts.sms_parameters)
    if channel is Channel.WECHAT:
        return Message(**common, text=parts.wechat.get("first", parts.subject), template_id=wechat_template_id,
                       parameters=parts.wechat)
    return Message(**common, text=parts.body, payload=webhook_payload(notification, parts))


def render_parts(notification: Notification) -> RenderedParts:
    """Every part of the notification's topic template in the recipient's language."""
    name = template_name(notification.topic.value, notification.recipient.language)
    variables = {**notification.context, "language": notification.recipient.language.value}
    try:
        module = _environment().get_template(name).make_module(variables)
        exported = {part: getattr(module, part) for part in _PARTS if hasattr(module, part)}
        missing = [part for part in _PARTS if part not in exported]
        if missing:
            raise TemplateFailed(f"{name} does not set {', '.join(missing)}")
        return RenderedParts(subject=_one_line(exported["subject"]), body=_paragraphs(exported["body"]),
                             sms=_one_line(exported["sms"]), sms_parameters=_fields(exported["sms_parameters"]),
                             wechat=_fields(exported["wechat"]))
    except TemplateNotFound as error:
        raise TemplateFailed(f"no template {error.name} for {notification.topic.value}") from error
    except _RENDER_ERRORS as error:
        raise TemplateFailed(f"{name}: {type(error).__name__}: {error}") from error


def template_name(topic: str, language: Language) -> str:
    """The file of a topic's template in one language."""
    return f"{topic}.{language.value}.j2"


def webhook_payload(notification: Notification, parts: RenderedParts) -> dict[str, Any]:
    """The JSON object an integrator receives: who and what, the event's fields, and the rendered text."""
    body: dict[str, Any] = {
        "notification_id": str(notification.notification_id), "topic": notification.topic.value,
        "tenant_id": notification.tenant_id, "subject_id": notification.subject_id,
        "account_id": notification.account_id, "urgency": notification.urgency.value,
        "cause_event_id": str(notification.cause_event_id), "created_at": notification.created_at.isoformat(),
        **{key: notification.context[key] for key in ("event_type", "event", "alarms") if key in notification.context},
        "message": {"language": notification.recipient.language.value, "subject": parts.subject, "text": parts.body},
    }
    try:  # a round trip proves the body is plain JSON before anyone signs it
        decoded: dict[str, Any] = json.loads(json.dumps(body, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TemplateFailed(f"webhook payload is not JSON: {error}") from error
    return decoded


def _html(notification: Notification, parts: RenderedParts) -> str:
    paragraphs = [paragraph.split("\n") for paragraph in parts.body.split("\n\n")]
    try:
        return _environment().get_template("email.html.j2").render(
            language=notification.recipient.language.value, subject=parts.subject, paragraphs=paragraphs)
    except _RENDER_ERRORS as error:
        raise TemplateFailed(f"email.html.j2: {type(error).__name__}: {error}") from error


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _paragraphs(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _fields(values: object) -> dict[str, str]:
    if not isinstance(values, dict):
        raise TypeError(f"expected a mapping of template fields, got {type(values).__name__}")
    return {str(key): _one_line(value) for key, value in values.items()}


@cache
def _environment() -> Environment:
    # Autoescape is for HTML only: plain text, SMS and WeChat fields must not carry &lt; entities.
    environment = Environment(
        loader=PackageLoader("notify", "templates"), undefined=StrictUndefined, trim_blocks=True,
        lstrip_blocks=True,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False))
    environment.filters.update(money=_money, amount=_amount, local_time=_local_time,
                               days_covered=_days_covered)
    return environment


def _cents(value: object) -> Decimal:
    if isinstance(value, bool | float) or value is None:
        raise TypeError(f"money must be a decimal string or Decimal, not {value!r}")
    cents = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    return cents if cents else abs(cents)  # no "-0.00"


def _amount(value: object) -> str:
    return str(_cents(value))


def _days_covered(balance: object, daily_cost: object) -> int | None:
    """Whole days the balance lasts at the daily cost; None when nothing is known to be spent."""
    if daily_cost is None or not _cents(daily_cost) > 0:
        return None
    return max(int(_cents(balance) / _cents(daily_cost)), 0)


@pass_context
def _money(context: Context, value: object, currency: str) -> str:
    amount, chinese = _cents(value), context["language"] == Language.ZH_CN.value
    if chinese and currency == "CNY":
        return f"{amount}元"
    return f"{amount} {currency}" if chinese else f"{currency} {amount}"


@pass_context
def _local_time(context: Context, value: object) -> str:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError(f"time without a zone: {value}")
    return at.astimezone(ZoneInfo(context["time_zone"])).strftime("%Y-%m-%d %H:%M")
