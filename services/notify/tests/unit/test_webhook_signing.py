"""The webhook signature integrators verify (the scheme billing checks on payment callbacks)."""

from __future__ import annotations

from notify.core.signing import webhook_signature

BODY = b'{"account_id":"1001","balance":"8.20"}'


def test_the_signature_is_hex_hmac_sha256_over_timestamp_dot_body() -> None:
    # Computed independently: printf '%s' '1795000000.{…}' | openssl dgst -sha256 -hmac 'whsec-test'
    assert webhook_signature(b"whsec-test", "1795000000", BODY) == (
        "4e5c7e4030367270ca244a9feb53498a469ea9567a55a7cfb78a849a275afb86")


def test_another_timestamp_body_or_secret_gives_another_signature() -> None:
    signed = webhook_signature(b"whsec-test", "1795000000", BODY)

    assert webhook_signature(b"whsec-test", "1795000001", BODY) != signed
    assert webhook_signature(b"whsec-test", "1795000000", BODY.replace(b"8.20", b"9.20")) != signed
    assert webhook_signature(b"whsec-other", "1795000000", BODY) != signed
