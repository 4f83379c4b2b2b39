"""What an access token says: the claims of a grantee (a person or a client), narrowed by the scope asked for.

The claims contract is amiflow_runtime.auth's; this module only decides their values. No clock, no key:
the caller passes `now` and the token id, and signs the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amiflow_runtime.auth import ROLE_PERMISSIONS, Permission, Role


class OAuthError(Exception):
    """A token request refused, as RFC 6749 §5.2 names it (`error`) with a description for people."""

    status = 400

    def __init__(self, error: str, description: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.retry_after_s = error, description, retry_after_s


class InvalidRequest(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_request", description)


class InvalidClient(OAuthError):
    """The client could not be authenticated (401 with WWW-Authenticate, RFC 6749 §5.2)."""

    status = 401

    def __init__(self, description: str, *, retry_after_s: int | None = None) -> None:
        super().__init__("invalid_client", description, retry_after_s=retry_after_s)


class InvalidGrant(OAuthError):
    def __init__(self, description: str, *, retry_after_s: int | None = None) -> None:
        super().__init__("invalid_grant", description, retry_after_s=retry_after_s)


class UnsupportedGrantType(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("unsupported_grant_type", description)


class InvalidScope(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_scope", description)


@dataclass(frozen=True)
class Grantee:
    """Whom a token is for, as their credential says (a user's or a client's record)."""

    subject: str
    tenant: str
    roles: frozenset[Role]
    sites: frozenset[str] | None = None  # None: every site of the tenant
    duties: frozenset[str] | None = None  # None: every utility
    account_id: str | None = None  # a customer's own account
    scopes: frozenset[Permission] | None = None  # a client's ceiling; None: whatever its roles allow

    @property
    def allowed(self) -> frozenset[Permission]:
        """What the grantee may do at most: its roles' permissions, within its own scopes if it has any."""
        permissions: frozenset[Permission] = frozenset().union(*(ROLE_PERMISSIONS[r] for r in self.roles))
        return permissions if self.scopes is None else permissions & self.scopes


def parse_scope(text: str | None) -> frozenset[Permission] | None:
    """The permissions a `scope` parameter names (space-separated, RFC 6749 §3.3); None when not given."""
    if text is None:
        return None
    names = text.split()
    if not names:
        raise InvalidScope("the scope is empty: leave it out to ask for everything the credential allows")
    unknown = sorted({n for n in names if n not in {p.value for p in Permission}})
    if unknown:
        raise InvalidScope(f"unknown scope {', '.join(unknown)}; scopes are {', '.join(p.value for p in Permission)}")
    return frozenset(Permission(n) for n in names)


def granted_scope(grantee: Grantee, requested: frozenset[Permission] | None) -> frozenset[Permission] | None:
    """The scope a token carries: what was asked for, which must be within what the grantee is allowed.

    None means "not narrowed" (the token's roles say it all); a client with scopes of its own always
    gets them written into its tokens, since its roles alone would allow more.
    """
    if requested is None:
        return grantee.scopes
    beyond = requested - grantee.allowed
    if beyond:
        raise InvalidScope(f"the credential is not allowed {', '.join(sorted(beyond))}")
    return requested


def access_token_claims(grantee: Grantee, *, scope: frozenset[Permission] | None, issuer: str, audience: str,
                        now: datetime, lifetime_s: int, token_id: str) -> dict[str, Any]:
    """The claims of an access token for `grantee` issued at `now` (see amiflow_runtime.auth)."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": grantee.subject, "tenant": grantee.tenant,
        "roles": sorted(r.value for r in grantee.roles),
        "iat": issued, "nbf": issued, "exp": issued + lifetime_s, "jti": token_id,
    }
    optional: Mapping[str, Any] = {
        "scope": " ".join(sorted(p.value for p in scope)) if scope is not None else None,
        "sites": sorted(grantee.sites) if grantee.sites is not None else None,
        "duties": sorted(grantee.duties) if grantee.duties is not None else None,
        "account_id": grantee.account_id,
    }
    claims.update({name: value for name, value in optional.items() if value is not None})
    return claims


def token_answer(token: str, *, lifetime_s: int, scope: frozenset[Permission] | None) -> dict[str, Any]:
    """The token endpoint's successful answer (RFC 6749 §5.1)."""
    answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime_s}
    if scope is not None:
        answer["scope"] = " ".join(sorted(p.value for p in scope))
    return answer
