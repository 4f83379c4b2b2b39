"""The signing keys in use: the active one to sign with, the published ones for the JWKS, rotation.

Rotation happens under a database lock (an advisory lock on PostgreSQL, the write lock on SQLite) and a
unique index allows one active key only, so replicas that find the key due at the same moment make one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import Any

from amiflow_runtime.auth import public_jwk
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from identity.adapters import store
from identity.adapters.crypto import (
    KeyEncryptionKey,
    SealedKeyUnreadable,
    key_encryption_key,
    new_signing_key,
    private_bytes,
    private_key_of,
)
from identity.config import IdentitySettings
from identity.core.keys import SigningKeyInfo, new_key_id, published, rotation_due

log = logging.getLogger("identity.keys")


class Keyring:
    """Signing keys of one identity process, read from the database (shared by replicas)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: IdentitySettings,
                 now: Callable[[], datetime]) -> None:
        self.sessions, self.settings, self.now = sessions, settings, now
        self._opened: dict[str, Any] = {}  # kid → private key, so a token costs no decryption

    @cached_property
    def kek(self) -> KeyEncryptionKey:
        """The key-encryption key, read when first needed (at start: a bad one stops the process there)."""
        return key_encryption_key(self.settings)

    async def _make_key(self, session: AsyncSession, retiring: store.SealedKey | None, reason: str) -> str:
        now = self.now()
        if retiring is not None:
            await store.retire_key(session, retiring.info.kid, now)
            self._opened.pop(retiring.info.kid, None)
        kid = new_key_id(now, secrets.token_hex(4))
        key = new_signing_key()
        info = SigningKeyInfo(kid, public_jwk(key, kid), now)
        await store.add_key(session, info, self.kek.seal(kid, private_bytes(key)), self.kek.fingerprint)
        log.info("signing key %s made (%s)%s", kid, reason,
                 f"; {retiring.info.kid} retired" if retiring is not None else "")
        return kid

    async def ensure_current(self) -> str:
        """The active key's id, after making a new one if there is none or it is due for rotation."""
        async with self.sessions() as session, session.begin():
            await store.lock_keys(session)
            active = await store.active_key(session)
            if active is not None and not rotation_due(active.info, self.now(), self.settings.key_rotation_days):
                return active.info.kid
            reason = "first key" if active is None else f"{self.settings.key_rotation_days} days old"
            return await self._make_key(session, active, reason)

    async def rotate(self, reason: str) -> tuple[str, str | None]:
        """Retire the active key now and make a new one: (new kid, retired kid)."""
        async with self.sessions() as session, session.begin():
            await store.lock_keys(session)
            active = await store.active_key(session)
            kid = await self._make_key(session, active, reason)
        return kid, active.info.kid if active is not None else None

    async def signing_key(self) -> tuple[str, Any]:
        """(kid, private key) of the active key; SealedKeyUnreadable when this process cannot open it."""
        async with self.sessions() as session:
            active = await store.active_key(session)
        if active is None:
            await self.ensure_current()
            return await self.signing_key()
        kid = active.info.kid
        if kid not in self._opened:
            if active.kek_fingerprint != self.kek.fingerprint or active.sealed is None:
                raise SealedKeyUnreadable(
                    f"signing key {kid} was sealed with key-encryption key {active.kek_fingerprint}, this process "
                    f"has {self.kek.fingerprint}: every replica needs the same IDENTITY_KEY_ENCRYPTION_KEY")
            self._opened[kid] = private_key_of(self.kek.open(kid, active.sealed))
        return kid, self._opened[kid]

    async def published(self) -> list[SigningKeyInfo]:
        """The keys the JWKS lists now: the active one and the retired ones whose tokens may be alive."""
        async with self.sessions() as session:
            keys = await store.all_keys(session)
        return published([k.info for k in keys], self.now(), longest_lifetime_s=self.settings.longest_token_lifetime_s,
                         leeway_s=self.settings.auth_leeway_s)

    async def all_keys(self) -> list[SigningKeyInfo]:
        async with self.sessions() as session:
            return [k.info for k in await store.all_keys(session)]
