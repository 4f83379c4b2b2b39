"""E-mail over SMTP (aiosmtplib): a text part, an optional HTML alternative, UTF-8 throughout.

A re-send is recognisable: the Message-ID is derived from the message's idempotency key, so when a
timeout hides that the server did take the first attempt, the customer's mail program (and anyone
reading the server's log) sees the same Message-ID twice.
"""

from __future__ import annotations

import asyncio
import email.policy
import re
import uuid
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib
from amiflow_runtime.clock import Clock, SystemClock

from notify.adapters.channels.base import SmtpConfig, SmtpSecurity, delivered, refused, retry_later
from notify.core.model import Channel, DeliveryOutcome, Message

# 7-bit clean bodies (base64 or quoted-printable for Chinese text): a relay without 8BITMIME passes
# them untouched, where 8-bit bodies would be mangled or refused.
_POLICY = email.policy.default.clone(cte_type="7bit")


def message_id(idempotency_key: str, from_address: str) -> str:
    """``<KEY@sender-domain>``, a UUID key in hex: the same key gives the same Message-ID every time.

    Kept short because a header longer than 78 characters is folded, which is legal but which some
    mail programs read with a stray space."""
    domain = from_address.rpartition("@")[2]
    if not idempotency_key:
        return make_msgid("amiflow", domain=domain)
    try:
        local = uuid.UUID(idempotency_key).hex
    except ValueError:
        local = re.sub(r"[^A-Za-z0-9._-]", "-", idempotency_key)
    return f"<{local}@{domain}>"


def email_message(message: Message, config: SmtpConfig, sent_at: datetime) -> EmailMessage:
    """The MIME message for ``message``: headers encoded per RFC 2047, text then HTML alternative."""
    mail = EmailMessage(policy=_POLICY)
    mail["From"] = Address(display_name=config.from_name, addr_spec=config.from_address)
    mail["To"] = message.address
    # A template's line break would be a header injection; the policy refuses it, we fold it instead.
    mail["Subject"] = " ".join(message.subject.split())
    mail["Date"] = format_datetime(sent_at)
    mail["Message-ID"] = message_id(message.idempotency_key, config.from_address)
    # RFC 3834: vacation responders and list servers do not answer machine mail, so no reply loops.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.text, charset="utf-8")
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
    return mail


def smtp_failure(exc: Exception, host: str, timeout_s: float, *secrets: str) -> DeliveryOutcome:
    """What an aiosmtplib failure means for this message: 4xx and lost connections pass later, 5xx never."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        replies = "; ".join(f"{r.recipient} {r.code} {r.message}" for r in exc.recipients)
        text = f"{host} refused the recipient: {replies}"
        temporary = any(400 <= r.code < 500 for r in exc.recipients)
        return retry_later(text, *secrets) if temporary else refused(text, *secrets)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{host} answered {exc.code} {exc.message} ({type(exc).__name__})"
        return retry_later(text, *secrets) if 400 <= exc.code < 500 else refused(text, *secrets)
    if isinstance(exc, TimeoutError):
        return retry_later(f"{host}: no answer within {timeout_s:g} s ({type(exc).__name__})", *secrets)
    if isinstance(exc, OSError):  # refused, reset, unreachable, disconnected (aiosmtplib's are ConnectionErrors)
        return retry_later(f"{host}: unreachable ({type(exc).__name__}: {exc})", *secrets)
    # What remains is the configuration against this server (no STARTTLS, no AUTH, no SMTPUTF8).
    return refused(f"{host}: {type(exc).__name__}: {exc}", *secrets)


class SmtpChannel:
    """One tenant's mail server."""

    channel: Channel = Channel.EMAIL

    def __init__(self, config: SmtpConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()

    async def send(self, message: Message) -> DeliveryOutcome:
        config = self.config
        try:
            mail = email_message(message, config, self.clock.now())
        except ValueError as exc:  # an address with a line break or that is no address at all
            return refused(f"cannot be written as e-mail: {exc}")
        password = config.password.get_secret_value() if config.password else None
        try:
            async with asyncio.timeout(config.timeout_s):
                _, reply = await aiosmtplib.send(
                    mail, sender=config.from_address, recipients=[message.address],
                    hostname=config.host, port=config.port, username=config.username, password=password,
                    use_tls=config.security is SmtpSecurity.TLS,
                    start_tls=config.security is SmtpSecurity.STARTTLS,
                    timeout=config.timeout_s)
        except (aiosmtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
            # aiosmtplib's texts do not carry the password; passing it makes sure for every version.
            return smtp_failure(exc, config.host, config.timeout_s, password or "")
        return delivered(f"{config.host} accepted: {reply}", str(mail["Message-ID"]), password or "")
