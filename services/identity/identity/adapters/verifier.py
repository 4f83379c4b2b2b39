"""The keys identity checks tokens sent to its own management API against: its own, from its database."""

from __future__ import annotations

from typing import Any

from amiflow_runtime.auth import KeySource, KeysUnavailable
from sqlalchemy.exc import SQLAlchemyError

from identity.core.keys import jwks
from identity.keyring import Keyring


def own_keys(keyring: Keyring) -> KeySource:
    """The keys identity publishes, read from its database (no HTTP call to itself; AMIFLOW_AUTH_JWKS_URL
    names this very service). Read on every check, so a rotation or a retirement counts at once."""

    async def read() -> Any:
        try:
            return jwks(await keyring.published())
        except (SQLAlchemyError, OSError) as exc:
            raise KeysUnavailable(f"the signing keys cannot be read from the database: {type(exc).__name__}") from exc

    return read
