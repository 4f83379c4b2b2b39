"""Settings of the identity service (env prefix IDENTITY_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from amiflow_runtime.config import Environment, ServiceSettings, settings_config
from pydantic import Field, SecretStr, model_validator


class IdentitySettings(ServiceSettings):
    """Tokens, signing keys and credentials; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("IDENTITY_")
    service_name: ClassVar[str] = "identity"
    default_api_port: ClassVar[int] = 8006

    # Encrypts the signing keys' private halves at rest: 32 random bytes, base64 (url-safe or standard).
    # Required in production. In development and test, unset means a key generated once into
    # <data dir>/identity/key-encryption-key (mode 0600): the database alone then cannot sign tokens,
    # but anyone with the data folder can — fine on a laptop, not on a server.
    key_encryption_key: SecretStr | None = None

    # Access token lifetimes. Tokens are stateless: disabling a credential or changing its roles takes
    # effect when the tokens already issued expire, so these stay short. People log in again; clients
    # (machines) fetch a new token.
    user_token_lifetime_s: int = Field(900, ge=60, le=86_400)
    client_token_lifetime_s: int = Field(3600, ge=60, le=86_400)

    # The signing key is replaced when it is this old (checked at start and every key_check_interval_s).
    key_rotation_days: int = Field(90, ge=1, le=3650)
    key_check_interval_s: float = Field(3600.0, gt=0)
    # Verifiers may cache the JWKS this long. A new key needs no wait (an unknown key id makes verifiers
    # refetch); a retired key stays published for the longest token lifetime after it, far beyond this.
    jwks_max_age_s: int = Field(300, ge=0, le=3600)
    # Where the discovery document says the token endpoint is (e.g. https://id.example.com), when the
    # service sits behind a proxy that rewrites the address; unset: the address of the request.
    public_url: str | None = None

    # Passwords people choose (or are given) are at least this long; generated ones are longer.
    password_min_length: int = Field(12, ge=8, le=128)

    # Guessing: this many failed logins of one username (whether it exists or not) within
    # failure_window_s lock it for lockout_s, doubling with each further failure up to lockout_max_s.
    # One client address gets a larger allowance (a utility's office sits behind one NAT address).
    username_failure_limit: int = Field(5, ge=1, le=100)
    address_failure_limit: int = Field(30, ge=1, le=10_000)
    failure_window_s: float = Field(900.0, gt=0)
    lockout_s: float = Field(60.0, gt=0)
    lockout_max_s: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _key_encryption_key_in_production(self) -> IdentitySettings:
        # A generated key next to the data is a development convenience; in production the key must
        # come from a secret store, or a stolen database backup would carry everything needed to sign.
        if self.environment is Environment.PRODUCTION and self.key_encryption_key is None:
            raise ValueError("IDENTITY_KEY_ENCRYPTION_KEY is required in production (32 random bytes, base64)")
        return self

    @property
    def longest_token_lifetime_s(self) -> int:
        return max(self.user_token_lifetime_s, self.client_token_lifetime_s)

    @property
    def identity_dir(self) -> Path:
        """<data dir>/identity: the development key-encryption key and `amiflow up`'s bootstrap files."""
        return self.resolved_data_dir / "identity"
