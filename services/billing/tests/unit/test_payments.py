"""Provider callbacks are verified before anything is credited; amounts are checked with clear reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from billing.core.payments import (
    AmountProblem,
    CallbackProblem,
    callback_signature,
    check_amount,
    verify_callback,
)

SECRET = b"provider-secret-of-tenant-demo"
BODY = b'{"out_trade_no":"ACC-1-20260701-0001","amount":"50.00","currency":"CNY"}'
NOW = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
STAMP = str(int(NOW.timestamp()))


def _verify(timestamp: str | None = STAMP, signature: str | None = None, body: bytes = BODY,
            now: datetime = NOW) -> CallbackProblem | None:
    signed = callback_signature(SECRET, timestamp or STAMP, BODY) if signature is None else signature
    return verify_callback(SECRET, timestamp, signed, body, now).problem


def test_a_correctly_signed_fresh_callback_is_accepted() -> None:
    verdict = verify_callback(SECRET, STAMP, callback_signature(SECRET, STAMP, BODY), BODY, NOW)

    assert verdict.accepted and verdict.problem is None


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_in_hex() -> None:
    import hashlib
    import hmac

    assert callback_signature(SECRET, "1", b"x") == hmac.new(SECRET, b"1.x", hashlib.sha256).hexdigest()


def test_a_tampered_body_or_another_secret_is_a_bad_signature() -> None:
    assert _verify(body=BODY.replace(b"50.00", b"500.00")) is CallbackProblem.BAD_SIGNATURE
    assert _verify(signature=callback_signature(b"someone-else", STAMP, BODY)) is CallbackProblem.BAD_SIGNATURE
    assert _verify(signature="not hex at all \u00e9") is CallbackProblem.BAD_SIGNATURE


def test_a_signature_for_another_timestamp_is_bad_even_with_a_fresh_timestamp() -> None:
    signed_earlier = callback_signature(SECRET, str(int(NOW.timestamp()) - 60), BODY)

    assert _verify(signature=signed_earlier) is CallbackProblem.BAD_SIGNATURE


@pytest.mark.parametrize(("age", "problem"), [
    (timedelta(minutes=4, seconds=59), None),
    (timedelta(minutes=5), None),
    (timedelta(minutes=5, seconds=1), CallbackProblem.STALE_TIMESTAMP),
    (timedelta(hours=6), CallbackProblem.STALE_TIMESTAMP),  # a captured callback replayed later
    (-timedelta(minutes=5, seconds=1), CallbackProblem.STALE_TIMESTAMP),  # a clock far ahead
])
def test_only_callbacks_signed_within_five_minutes_of_now_are_accepted(age: timedelta,
                                                                       problem: CallbackProblem | None) -> None:
    assert _verify(now=NOW + age) is problem


def test_missing_and_malformed_headers_are_named() -> None:
    assert _verify(timestamp=None) is CallbackProblem.MISSING_HEADER
    assert _verify(signature="") is CallbackProblem.MISSING_HEADER
    assert _verify(timestamp="2026-07-01T04:00:00Z") is CallbackProblem.MALFORMED_TIMESTAMP
    assert _verify(timestamp="9" * 40) is CallbackProblem.MALFORMED_TIMESTAMP


@pytest.mark.parametrize(("amount", "currency", "problem"), [
    ("50.00", "CNY", None),
    (" 50.5 ", "CNY", None),
    (Decimal("0.01"), "CNY", None),
    (100, "CNY", None),
    ("0", "CNY", AmountProblem.NOT_POSITIVE),
    ("-5.00", "CNY", AmountProblem.NOT_POSITIVE),
    ("1.005", "CNY", AmountProblem.FRACTION_OF_A_CENT),
    (1.5, "CNY", AmountProblem.NOT_A_DECIMAL),
    ("fifty", "CNY", AmountProblem.NOT_A_DECIMAL),
    ("NaN", "CNY", AmountProblem.NOT_A_DECIMAL),
    ("Infinity", "CNY", AmountProblem.NOT_A_DECIMAL),
    (True, "CNY", AmountProblem.NOT_A_DECIMAL),
    ("50.00", "USD", AmountProblem.WRONG_CURRENCY),
])
def test_amounts_are_positive_whole_cents_in_the_tenants_currency(amount: object, currency: str,
                                                                  problem: AmountProblem | None) -> None:
    checked = check_amount(amount, currency, "CNY")

    assert checked.problem is problem
    assert (checked.amount is None) == (problem is not None)
    assert checked.detail
