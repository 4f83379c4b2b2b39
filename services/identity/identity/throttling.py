"""Failed attempts counted in the database, so that every API replica sees the same lockouts."""

from __future__ import annotations

from collections.abc import Sequence

from identity.adapters import store
from identity.core.throttle import Limits, after_failure, locked_for_s
from identity.runtime import IdentityRuntime


def limits_of(runtime: IdentityRuntime, key: str) -> Limits:
    """The limits of a throttle key: an address ("address:…") gets a larger allowance than a name."""
    settings = runtime.identity_settings
    failure_limit = settings.address_failure_limit if key.startswith("address:") else settings.username_failure_limit
    return Limits(failure_limit, settings.failure_window_s, settings.lockout_s, settings.lockout_max_s)


class Throttle:
    """Lockouts of names and addresses after failed attempts (see identity.core.throttle)."""

    def __init__(self, runtime: IdentityRuntime) -> None:
        self.runtime = runtime

    async def locked_for_s(self, keys: Sequence[str]) -> int | None:
        """Seconds until all of `keys` may try again; None when none of them is locked."""
        async with self.runtime.sessions() as session:
            states = await store.failures_of(session, keys, for_update=False)
        now = self.runtime.clock.now()
        waits = [w for w in (locked_for_s(states.get(k), now) for k in keys) if w is not None]
        return max(waits, default=None)

    async def failed(self, keys: Sequence[str]) -> int | None:
        """Count one failure under each key; the longest lockout that follows, if any."""
        now = self.runtime.clock.now()
        waits = []
        async with self.runtime.sessions() as session, session.begin():
            states = await store.failures_of(session, keys, for_update=True)
            for key in keys:
                after = after_failure(states.get(key), now, limits_of(self.runtime, key))
                await store.save_failures(session, key, after, existed=key in states)
                waits.append(locked_for_s(after, now))
        return max((w for w in waits if w is not None), default=None)

    async def succeeded(self, key: str) -> None:
        """Forget a name's failures (never an address's: see identity.core.throttle)."""
        async with self.runtime.sessions() as session, session.begin():
            await store.forget_failures(session, key)
