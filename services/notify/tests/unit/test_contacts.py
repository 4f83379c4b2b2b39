"""Contact addresses are checked when saved: canonical forms back, bad ones refused with a reason."""

from __future__ import annotations

import pytest
from notify.core.contacts import (
    InvalidContact,
    check_email,
    check_phone,
    check_time_zone,
    check_webhook_url,
    check_wechat_openid,
)


@pytest.mark.parametrize("text", ["13812345678", "+86 138 1234 5678", " 138-1234-5678 "])
def test_a_chinese_mobile_number_comes_back_in_e164(text: str) -> None:
    assert check_phone(text) == "+8613812345678"


def test_a_foreign_number_keeps_its_country() -> None:
    assert check_phone("+1 650 253 0000") == "+16502530000"


@pytest.mark.parametrize(("text", "reason"), [("12345", "not a valid phone number"),
                                              ("call me", "not a phone number"),
                                              ("", "not a phone number"),
                                              ("+86 138 1234 567", "not a valid phone number")])
def test_an_invalid_phone_number_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidContact, match=reason) as refused:
        check_phone(text)
    assert reason in refused.value.reason


def test_a_landline_is_valid_but_refused_where_sms_is_needed() -> None:
    assert check_phone("010-12345678") == "+861012345678"
    with pytest.raises(InvalidContact, match="not a mobile number"):
        check_phone("010-12345678", mobile_only=True)


def test_an_email_address_is_normalised_without_a_dns_lookup() -> None:
    assert check_email(" Li.Wei@Example.COM ") == "Li.Wei@example.com"
    assert check_email("ops@water-utility.invalid-tld-never-resolved.cn") == (
        "ops@water-utility.invalid-tld-never-resolved.cn")


@pytest.mark.parametrize(("text", "reason"), [("li.example.com", "@-sign"), ("li@", "after the @-sign"),
                                              ("li@localhost", "after the @-sign"), ("", "not a valid e-mail")])
def test_an_invalid_email_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidContact, match=reason):
        check_email(text)


def test_a_wechat_openid() -> None:
    assert check_wechat_openid(" oAbCdEfGhIjKlMnOpQrStUvWxYz0 ") == "oAbCdEfGhIjKlMnOpQrStUvWxYz0"
    for bad in ("", "short", "o AbCdEfGhIjKlMnOpQrStUvWxYz0", "oAbC<script>EfGhIjKlMnOpQrS"):
        with pytest.raises(InvalidContact, match="openid"):
            check_wechat_openid(bad)


@pytest.mark.parametrize("url", ["https://integrator.example/hooks/amiflow", "http://127.0.0.1:8080/hook",
                                 "http://localhost:9000/hook", "http://[::1]:9000/hook"])
def test_webhooks_are_https_or_local_http(url: str) -> None:
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(("url", "reason"), [
    ("http://integrator.example/hook", "must use https"),
    ("http://10.0.0.5/hook", "must use https"),
    ("ftp://integrator.example/hook", "needs https"),
    ("integrator.example/hook", "needs https"),
    ("https://user:secret@integrator.example/hook", "no credentials"),
    ("https://integrator.example:99999/hook", "bad port"),
    ("https://integrator.example/hook#part", "fragment"),
    ("https://0.0.0.0/hook", "not an address"),
    ("https://integrator.example/" + "a" * 2000, "at most"),
])
def test_an_unusable_webhook_url_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidContact, match=reason):
        check_webhook_url(url)


def test_a_time_zone_must_be_an_iana_name() -> None:
    assert check_time_zone("Asia/Shanghai") == "Asia/Shanghai"
    for bad in ("", "Mars/Olympus", "../etc/passwd", "UTC+8"):
        with pytest.raises(InvalidContact, match="time zone"):
            check_time_zone(bad)
