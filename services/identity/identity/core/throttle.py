"""Guessing passwords and secrets made slow: failed attempts per name and per address lead to a lockout
that doubles with each further failure.

A name is throttled whether or not it exists, so a lockout tells an attacker nothing about which names are
real. A success forgets a name's failures but not an address's: one valid account must not let an
attacker reset the count of guesses at everyone else's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limits:
    failure_limit: int  # failures within the window that lock
    window_s: float  # failures further apart than this start the count again
    lockout_s: float  # the first lockout; each failure after it doubles the next one
    lockout_max_s: float


@dataclass(frozen=True)
class Failures:
    """The recent failed attempts under one throttle key (a username, a client id, an address)."""

    count: int
    last_failed_at: datetime
    locked_until: datetime | None = None


def locked_for_s(state: Failures | None, now: datetime) -> int | None:
    """Whole seconds until the key may try again, or None when it is not locked."""
    if state is None or state.locked_until is None or state.locked_until <= now:
        return None
    return max(1, math.ceil((state.locked_until - now).total_seconds()))


def after_failure(state: Failures | None, now: datetime, limits: Limits) -> Failures:
    """The state after one more failed attempt at `now`."""
    fresh = state is None or (now - state.last_failed_at).total_seconds() > limits.window_s
    count = 1 if fresh or state is None else state.count + 1
    if count < limits.failure_limit:
        return Failures(count, now)
    doublings = min(count - limits.failure_limit, 32)  # past a few doublings the cap rules anyway
    lockout_s = min(limits.lockout_s * 2**doublings, limits.lockout_max_s)
    return Failures(count, now, now + timedelta(seconds=lockout_s))


def forgettable(state: Failures, now: datetime, limits: Limits) -> bool:
    """True when the record no longer counts for anything (not locked, last failure outside the window)."""
    return locked_for_s(state, now) is None and (now - state.last_failed_at).total_seconds() > limits.window_s
