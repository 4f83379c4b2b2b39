"""Credentials: what a user's or a client's record must look like, and the password policy.

Usernames are unique across the whole platform, not per tenant: people log in with a name and a password
and nothing else, so the name alone must say whose tenant they are in — a login form with a tenant field
would be one more thing to get wrong, and could be aimed at another tenant. The cost: a tenant cannot take a
name another tenant has (the refusal says "taken", not by whom).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from amiflow_runtime.auth import UTILITIES, Permission, Role

# Lower case so that "Alice" and "alice" are one person; no "_" so a username never looks like a client id.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9.@+-]{0,63}$")
CLIENT_ID_PREFIX = "client_"
SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
PASSWORD_MAX_LENGTH = 256  # long enough for any passphrase, short enough that hashing stays cheap
# Values that read as "nobody chose this" (cf. the runtime's placeholder secrets).
GUESSABLE = frozenset({"password", "changeme", "change-me", "amiflow", "admin", "administrator", "welcome",
                       "letmein", "qwerty", "123456", "12345678", "123456789", "1234567890"})


class InvalidCredential(ValueError):
    """A credential that cannot be kept as asked (answered 422 with the reason)."""


@dataclass(frozen=True)
class Reach:
    """What a credential grants: roles, and an operator's sites and duties, a customer's account, a client's scopes."""

    roles: frozenset[Role]
    sites: frozenset[str] | None = None
    duties: frozenset[str] | None = None
    account_id: str | None = None
    scopes: frozenset[Permission] | None = None


@dataclass(frozen=True)
class User:
    username: str
    tenant: str
    reach: Reach
    disabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    password_changed_at: datetime


@dataclass(frozen=True)
class Client:
    client_id: str
    tenant: str
    name: str
    reach: Reach
    disabled: bool  # revoked: a client is never enabled again, a new one is made
    created_at: datetime
    created_by: str
    disabled_at: datetime | None = None
    disabled_by: str | None = None


def normal_username(text: str) -> str:
    """The stored form of a username (lower case, trimmed); InvalidCredential when it cannot be one."""
    name = text.strip().lower()
    if not USERNAME.match(name):
        raise InvalidCredential("a username is 1-64 lower-case letters, digits and . @ + - (starting with a "
                                "letter or digit)")
    return name


def checked_reach(roles: Iterable[Role | str], *, sites: Iterable[str] | None = None,
                  duties: Iterable[str] | None = None, account_id: str | None = None,
                  scopes: Iterable[Permission | str] | None = None,
                  for_client: bool = False) -> Reach:
    """A coherent Reach, or InvalidCredential saying what does not fit."""
    try:
        reach = Reach(frozenset(Role(r) for r in roles), frozenset(sites) if sites is not None else None,
                      frozenset(duties) if duties is not None else None, account_id or None,
                      frozenset(Permission(s) for s in scopes) if scopes is not None else None)
    except ValueError as exc:  # a role or scope named as text that is none of them
        raise InvalidCredential(str(exc)) from None
    if not reach.roles:
        raise InvalidCredential("a credential needs at least one role")
    if reach.duties is not None and not reach.duties <= UTILITIES:
        raise InvalidCredential(f"unknown duty {', '.join(sorted(reach.duties - UTILITIES))}; duties are "
                                f"{', '.join(sorted(UTILITIES))}")
    bad_sites = sorted(s for s in reach.sites or () if not SITE.match(s))
    if bad_sites:
        raise InvalidCredential(f"not a site id: {', '.join(bad_sites)}")
    if Role.CUSTOMER in reach.roles:
        if reach.roles != {Role.CUSTOMER}:
            raise InvalidCredential("a customer holds no other role: staff use credentials of their own")
        if for_client:
            raise InvalidCredential("customers log in with a username and password, not as a client")
        if not reach.account_id:
            raise InvalidCredential("a customer's credential names their account (account_id)")
    elif reach.account_id is not None:
        raise InvalidCredential("only a customer's credential names an account")
    if reach.scopes is not None:
        if not for_client:
            raise InvalidCredential("scopes belong to clients; a person narrows a token with the scope parameter")
        if not reach.scopes:
            raise InvalidCredential("a client's scopes cannot be empty: leave them out for everything its roles allow")
    return reach


def checked_password(password: str, *, username: str, min_length: int) -> str:
    """`password` when the policy accepts it; else InvalidCredential with the rule it breaks."""
    if len(password) < min_length:
        raise InvalidCredential(f"a password has at least {min_length} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidCredential(f"a password has at most {PASSWORD_MAX_LENGTH} characters")
    folded = password.strip().lower()
    if (folded in GUESSABLE or (len(username) >= 3 and username in folded) or len(set(folded)) < 4
            or folded.isdigit()):
        raise InvalidCredential("this password is too easy to guess (it contains the username, repeats a few "
                                "characters, is only digits, or is a well-known one)")
    return password
