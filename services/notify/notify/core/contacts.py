"""Contact addresses checked when they are saved, so a bad one is refused then, not bounced at night.

Each check returns the address in its canonical form (E.164, the normalised e-mail) or raises
InvalidContact with a reason a person can act on. No check reaches the network.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# Webhooks must be HTTPS; plain HTTP only to this machine, where integrators test their receiver.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_MAX_URL_LENGTH = 2000
# An openid is 28 URL-safe characters in practice; allow some slack, never spaces or punctuation.
_OPENID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


class InvalidContact(ValueError):
    """A contact address refused; ``reason`` says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_phone(text: str, default_region: str = "CN", *, mobile_only: bool = False) -> str:
    """The number in E.164 (+8613812345678); national numbers are read in ``default_region``.

    ``mobile_only`` refuses numbers that cannot receive SMS (a landline is valid but silent).
    """
    try:
        number = phonenumbers.parse(text.strip(), default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidContact(f"not a phone number: {error}") from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact(f"{text.strip()!r} is not a valid phone number (region {default_region})")
    if mobile_only and phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidContact(f"{text.strip()!r} is not a mobile number: it cannot receive SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_email(text: str) -> str:
    """The normalised address; syntax only, no DNS (a save must not wait for or depend on a resolver)."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidContact(f"not a valid e-mail address: {error}") from error


def check_wechat_openid(text: str) -> str:
    """A WeChat official-account follower's openid, as WeChat issued it."""
    openid = text.strip()
    if not _OPENID.fullmatch(openid):
        raise InvalidContact("a WeChat openid is 16-64 letters, digits, '-' or '_' (usually 28)")
    return openid


def check_webhook_url(text: str) -> str:
    """An integrator's endpoint: https, or http to 127.0.0.1 / localhost for local testing."""
    url = text.strip()
    if len(url) > _MAX_URL_LENGTH:
        raise InvalidContact(f"a webhook URL is at most {_MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidContact("a webhook URL needs https:// and a host")
    if parts.scheme == "http" and host not in _LOCAL_HOSTS:
        raise InvalidContact("a webhook URL must use https (http only to 127.0.0.1 or localhost)")
    if parts.username is not None or parts.password is not None:
        raise InvalidContact("no credentials in a webhook URL: deliveries are signed with the subscription's secret")
    if parts.fragment:
        raise InvalidContact("a webhook URL has no #fragment: it is never sent to the server")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError as error:
        raise InvalidContact(f"a webhook URL with a bad port: {error}") from error
    _refuse_unspecified(host)
    return url


def check_time_zone(text: str) -> str:
    """An IANA zone name (Asia/Shanghai) for quiet hours and the times in messages."""
    name = text.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidContact(f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai") from error
    return name


def _refuse_unspecified(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a host name
    if address.is_unspecified or address.is_multicast:
        raise InvalidContact(f"{host} is not an address a webhook can be delivered to")
