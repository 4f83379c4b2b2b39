"""The life of a signing key: active (signs new tokens), retired (its tokens may still be alive, so it stays
published), then gone from the JWKS.

One key is active at a time. A retired key is published until the last token it could have signed has
expired: retired_at + the longest token lifetime + the verifiers' clock leeway. Past that, a token that
names it is refused as signed by a key the platform does not publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class SigningKeyInfo:
    """A signing key as the JWKS sees it: its id, public half (a JWK) and life."""

    kid: str
    public_jwk: Mapping[str, Any]
    created_at: datetime
    retired_at: datetime | None = None


def rotation_due(active: SigningKeyInfo | None, now: datetime, rotation_days: int) -> bool:
    """True when there is no active key, or the active one is `rotation_days` old."""
    return active is None or now - active.created_at >= timedelta(days=rotation_days)


def published_until(key: SigningKeyInfo, *, longest_lifetime_s: float, leeway_s: float) -> datetime | None:
    """When a retired key leaves the JWKS (None: the active key, published for as long as it is active)."""
    if key.retired_at is None:
        return None
    return key.retired_at + timedelta(seconds=longest_lifetime_s + leeway_s)


def published(keys: Iterable[SigningKeyInfo], now: datetime, *, longest_lifetime_s: float,
              leeway_s: float) -> list[SigningKeyInfo]:
    """The keys a JWKS answered at `now` lists: the active one, then retired ones newest first."""
    shown = []
    for key in keys:
        until = published_until(key, longest_lifetime_s=longest_lifetime_s, leeway_s=leeway_s)
        if until is None or until > now:
            shown.append(key)
    return sorted(shown, key=lambda k: (k.retired_at is not None, -(k.retired_at or k.created_at).timestamp()))


def jwks(keys: Iterable[SigningKeyInfo]) -> dict[str, Any]:
    """A JSON Web Key Set (RFC 7517) of the keys' public halves."""
    return {"keys": [dict(k.public_jwk) for k in keys]}


def new_key_id(now: datetime, random_suffix: str) -> str:
    """A key id that says when the key was made (helps whoever reads a token header) and is unique."""
    return f"{now:%Y%m%d}-{random_suffix}"
