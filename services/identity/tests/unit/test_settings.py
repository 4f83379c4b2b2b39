"""Production refuses to start without a key-encryption key; placeholders are refused as for every secret."""

from __future__ import annotations

import base64
import os

import pytest
from identity.config import IdentitySettings
from pydantic import SecretStr, ValidationError


def test_production_needs_a_key_encryption_key() -> None:
    with pytest.raises(ValidationError, match="IDENTITY_KEY_ENCRYPTION_KEY is required in production"):
        IdentitySettings(environment="production", database_url="postgresql+asyncpg://id:pw-from-vault@db/identity")


def test_production_refuses_a_placeholder_key_encryption_key() -> None:
    with pytest.raises(ValidationError, match="placeholder secrets"):
        IdentitySettings(environment="production", key_encryption_key=SecretStr("changeme"))


def test_production_starts_with_a_real_key() -> None:
    kek = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings = IdentitySettings(environment="production", key_encryption_key=SecretStr(kek))
    assert settings.longest_token_lifetime_s == 3600
