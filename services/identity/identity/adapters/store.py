"""Reading and writing identity's tables; rows become core values here and nowhere else."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amiflow_runtime.auth import Permission, Role
from amiflow_runtime.db import lock_for_transaction
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.adapters.db import clients, login_failures, signing_keys, users
from identity.core.credentials import Client, Reach, User
from identity.core.keys import SigningKeyInfo
from identity.core.throttle import Failures

# --- Signing keys ---------------------------------------------------------------------------------

KEYS_LOCK = "identity-signing-keys"


@dataclass(frozen=True)
class SealedKey:
    info: SigningKeyInfo
    sealed: bytes | None  # None once retired
    kek_fingerprint: str


def _sealed_key(row: Any) -> SealedKey:
    info = SigningKeyInfo(row.kid, json.loads(row.public_jwk), row.created_at, row.retired_at)
    return SealedKey(info, row.private_key, row.kek_fingerprint)


async def lock_keys(session: AsyncSession) -> None:
    """Serialise key rotation across replicas until the transaction ends (SQLite writers already are)."""
    await lock_for_transaction(session, KEYS_LOCK)


async def active_key(session: AsyncSession) -> SealedKey | None:
    row = (await session.execute(select(signing_keys).where(signing_keys.c.retired_at.is_(None)))).first()
    return _sealed_key(row) if row is not None else None


async def all_keys(session: AsyncSession) -> list[SealedKey]:
    rows = (await session.execute(select(signing_keys).order_by(signing_keys.c.created_at))).all()
    return [_sealed_key(row) for row in rows]


async def add_key(session: AsyncSession, info: SigningKeyInfo, sealed: bytes, kek_fingerprint: str) -> None:
    await session.execute(insert(signing_keys).values(
        kid=info.kid, algorithm="ES256", public_jwk=json.dumps(dict(info.public_jwk)), private_key=sealed,
        kek_fingerprint=kek_fingerprint, created_at=info.created_at, retired_at=None))


async def retire_key(session: AsyncSession, kid: str, at: datetime) -> None:
    # The private half goes with retirement: from now on the key only verifies what it signed.
    await session.execute(update(signing_keys).where(signing_keys.c.kid == kid)
                          .values(retired_at=at, private_key=None))


# --- Users and clients ----------------------------------------------------------------------------

def _names(value: Any) -> frozenset[str] | None:
    return frozenset(value) if value is not None else None


def _listed(values: Iterable[str] | None) -> list[str] | None:
    return sorted(values) if values is not None else None


def _user(row: Any) -> User:
    reach = Reach(frozenset(Role(r) for r in row.roles), _names(row.sites), _names(row.duties), row.account_id)
    return User(row.username, row.tenant_id, reach, row.disabled, row.created_at, row.created_by, row.updated_at,
                row.updated_by, row.password_changed_at)


def _client(row: Any) -> Client:
    scopes = frozenset(Permission(s) for s in row.scopes) if row.scopes is not None else None
    reach = Reach(frozenset(Role(r) for r in row.roles), _names(row.sites), _names(row.duties), None, scopes)
    return Client(row.client_id, row.tenant_id, row.name, reach, row.disabled, row.created_at, row.created_by,
                  row.disabled_at, row.disabled_by)


def _reach_values(reach: Reach) -> dict[str, Any]:
    return {"roles": sorted(r.value for r in reach.roles), "sites": _listed(reach.sites),
            "duties": _listed(reach.duties)}


async def user_named(session: AsyncSession, username: str) -> tuple[User, str] | None:
    """The user and their password hash, in whichever tenant they are (for logging in)."""
    row = (await session.execute(select(users).where(users.c.username == username))).first()
    return (_user(row), row.password_hash) if row is not None else None


async def user_of(session: AsyncSession, tenant: str, username: str) -> User | None:
    """The user `username` of `tenant`; None for a user of another tenant, as for one that does not exist."""
    row = (await session.execute(select(users).where(users.c.username == username,
                                                     users.c.tenant_id == tenant))).first()
    return _user(row) if row is not None else None


async def add_user(session: AsyncSession, user: User, password_hash: str) -> None:
    await session.execute(insert(users).values(
        username=user.username, tenant_id=user.tenant, password_hash=password_hash, **_reach_values(user.reach),
        account_id=user.reach.account_id, disabled=user.disabled, created_at=user.created_at,
        created_by=user.created_by, updated_at=user.updated_at, updated_by=user.updated_by,
        password_changed_at=user.password_changed_at))


async def change_user(session: AsyncSession, tenant: str, username: str, reach: Reach, disabled: bool, *,
                      by: str, at: datetime) -> None:
    await session.execute(update(users).where(users.c.username == username, users.c.tenant_id == tenant).values(
        **_reach_values(reach), account_id=reach.account_id, disabled=disabled, updated_at=at, updated_by=by))


async def set_password_hash(session: AsyncSession, username: str, password_hash: str, *, by: str | None,
                            at: datetime) -> None:
    """A new password (by: who set it), or a rehash with stronger parameters of the same one (by None)."""
    values: dict[str, Any] = {"password_hash": password_hash}
    if by is not None:
        values.update(password_changed_at=at, updated_at=at, updated_by=by)
    await session.execute(update(users).where(users.c.username == username).values(**values))


async def users_of(session: AsyncSession, tenant: str, *, after: str | None, limit: int) -> list[User]:
    query = select(users).where(users.c.tenant_id == tenant)
    if after is not None:
        query = query.where(users.c.username > after)
    rows = (await session.execute(query.order_by(users.c.username).limit(limit))).all()
    return [_user(row) for row in rows]


async def client_named(session: AsyncSession, client_id: str) -> tuple[Client, str] | None:
    """The client and its secret's hash, in whichever tenant it is (for authenticating it)."""
    row = (await session.execute(select(clients).where(clients.c.client_id == client_id))).first()
    return (_client(row), row.secret_hash) if row is not None else None


async def client_of(session: AsyncSession, tenant: str, client_id: str) -> Client | None:
    row = (await session.execute(select(clients).where(clients.c.client_id == client_id,
                                                       clients.c.tenant_id == tenant))).first()
    return _client(row) if row is not None else None


async def add_client(session: AsyncSession, client: Client, secret_hash: str) -> None:
    scopes = sorted(p.value for p in client.reach.scopes) if client.reach.scopes is not None else None
    await session.execute(insert(clients).values(
        client_id=client.client_id, tenant_id=client.tenant, name=client.name, secret_hash=secret_hash,
        **_reach_values(client.reach), scopes=scopes, disabled=client.disabled, created_at=client.created_at,
        created_by=client.created_by, disabled_at=None, disabled_by=None))


async def revoke_client(session: AsyncSession, tenant: str, client_id: str, *, by: str, at: datetime) -> None:
    await session.execute(update(clients).where(clients.c.client_id == client_id, clients.c.tenant_id == tenant,
                                                clients.c.disabled.is_(False))
                          .values(disabled=True, disabled_at=at, disabled_by=by))


async def clients_of(session: AsyncSession, tenant: str, *, include_revoked: bool) -> list[Client]:
    query = select(clients).where(clients.c.tenant_id == tenant)
    if not include_revoked:
        query = query.where(clients.c.disabled.is_(False))
    rows = (await session.execute(query.order_by(clients.c.created_at, clients.c.client_id))).all()
    return [_client(row) for row in rows]


async def every_user(session: AsyncSession, tenant: str | None) -> list[User]:
    """Every user (of one tenant, or all of them): the operators' CLI list."""
    query = select(users) if tenant is None else select(users).where(users.c.tenant_id == tenant)
    rows = (await session.execute(query.order_by(users.c.tenant_id, users.c.username))).all()
    return [_user(row) for row in rows]


async def every_client(session: AsyncSession, tenant: str | None) -> list[Client]:
    query = select(clients) if tenant is None else select(clients).where(clients.c.tenant_id == tenant)
    rows = (await session.execute(query.order_by(clients.c.tenant_id, clients.c.client_id))).all()
    return [_client(row) for row in rows]


# --- Login failures -------------------------------------------------------------------------------

async def failures_of(session: AsyncSession, keys: Sequence[str], *, for_update: bool) -> dict[str, Failures]:
    """The failure records of `keys`; for_update holds them until commit (two replicas count one failure
    each, not the same one twice)."""
    if for_update:
        for key in sorted(keys):  # one order everywhere: no deadlock between two requests
            await lock_for_transaction(session, "identity-throttle", key)
    rows = (await session.execute(select(login_failures).where(login_failures.c.throttle_key.in_(keys)))).all()
    return {row.throttle_key: Failures(row.failures, row.last_failed_at, row.locked_until) for row in rows}


async def save_failures(session: AsyncSession, key: str, state: Failures, existed: bool) -> None:
    values = {"failures": state.count, "last_failed_at": state.last_failed_at, "locked_until": state.locked_until}
    if existed:
        await session.execute(update(login_failures).where(login_failures.c.throttle_key == key).values(**values))
    else:
        await session.execute(insert(login_failures).values(throttle_key=key, **values))


async def forget_failures(session: AsyncSession, key: str) -> None:
    await session.execute(delete(login_failures).where(login_failures.c.throttle_key == key))


async def forget_stale_failures(session: AsyncSession, *, now: datetime, last_before: datetime) -> int:
    """Delete records that no longer count (not locked, last failure before `last_before`)."""
    stale = and_(login_failures.c.last_failed_at < last_before,
                 or_(login_failures.c.locked_until.is_(None), login_failures.c.locked_until <= now))
    result: Any = await session.execute(delete(login_failures).where(stale))
    return int(result.rowcount or 0)
