"""The identity process shell: the platform's ServiceRuntime plus signing keys and housekeeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from amiflow_runtime.service import ServiceRuntime, Subscription

from identity.adapters import store
from identity.config import IdentitySettings
from identity.keyring import Keyring

log = logging.getLogger("identity")


@dataclass
class IdentityRuntime(ServiceRuntime):
    """ServiceRuntime whose database also holds the signing keys: a process is ready once it has one."""

    identity_settings: IdentitySettings = field(init=False)
    keyring: Keyring = field(init=False)
    key_ready: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        assert isinstance(self.settings, IdentitySettings)
        self.identity_settings = self.settings
        self.keyring = Keyring(self.sessions, self.settings, lambda: self.clock.now())

    async def migrate(self) -> None:
        """Migrations, then a signing key: until one exists, no token can be issued."""
        await super().migrate()
        await self.keyring.ensure_current()
        await self.keyring.signing_key()  # proves this process can open it (same key-encryption key)
        self.key_ready = True

    async def start(self, subscriptions: Sequence[Subscription] = (),
                    extra: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        await super().start(subscriptions, [*extra, self.housekeeping])

    async def housekeeping(self) -> None:
        """Every key_check_interval_s: rotate the signing key when due, forget login failures that no
        longer count. Every replica runs it; the database lock makes one of them do the rotation."""
        settings = self.identity_settings
        while True:
            await asyncio.sleep(settings.key_check_interval_s)
            try:
                await self.keyring.ensure_current()
                now = self.clock.now()
                async with self.sessions() as session, session.begin():
                    await store.forget_stale_failures(session, now=now,
                                                      last_before=now - timedelta(seconds=settings.failure_window_s))
            except Exception:
                log.exception("identity housekeeping failed; retrying at the next interval")

    async def readiness(self) -> dict[str, bool]:
        checks = await super().readiness()
        checks["signing_key"] = self.key_ready
        return checks
