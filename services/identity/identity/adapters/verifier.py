"""How identity checks the tokens sent to its own management API."""

from __future__ import annotations

import json
import logging
from typing import Any

from amiflow_runtime.auth import KeysUnavailable, TokenVerifier
from sqlalchemy.exc import SQLAlchemyError

from identity.config import IdentitySettings
from identity.core.keys import jwks
from identity.keyring import Keyring

log = logging.getLogger("identity.verifier")
OWN_KEYS = "identity-database"  # a label in place of a JWKS URL: the keys are read from our own database


class OwnKeysVerifier(TokenVerifier):
    """Checks tokens against the keys identity publishes, read from its database on every call (no HTTP
    call to itself, and a rotation or a retirement counts at once), plus the keys of
    AMIFLOW_AUTH_JWKS_FILE when one is set (a mounted secret, or the test suite's keys).

    AMIFLOW_AUTH_JWKS_URL is not used here: it names this very service.
    """

    def __init__(self, keyring: Keyring, settings: IdentitySettings) -> None:
        super().__init__(issuer=settings.auth_issuer, audience=settings.auth_audience, jwks_url=OWN_KEYS,
                         jwks_file=settings.auth_jwks_file, leeway_s=settings.auth_leeway_s)
        self.keyring = keyring

    def _stale(self) -> bool:
        return True

    async def _documents(self) -> list[Any]:
        # As the runtime's verifier does with its two sources: one that fails leaves the other's keys usable,
        # and with neither the caller gets 503 (our problem), not 401 or a crash.
        documents: list[Any] = []
        problems: list[str] = []
        try:
            documents.append(jwks(await self.keyring.published()))
        except (SQLAlchemyError, OSError) as exc:
            problems.append(f"the signing keys cannot be read from the database: {type(exc).__name__}")
        if self.jwks_file is not None:
            try:
                documents.append(json.loads(self.jwks_file.read_text()))
            except (OSError, ValueError) as exc:
                problems.append(f"the JWKS file {self.jwks_file} cannot be read: {exc}")
        if not documents:
            raise KeysUnavailable("; ".join(problems))
        if problems:
            log.warning("token keys partly unavailable: %s", "; ".join(problems))
        return documents
