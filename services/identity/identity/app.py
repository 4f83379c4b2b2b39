"""Managing credentials: load the record → decide with the core rules → store, one transaction each.

Every call works in the tenant the caller acts in (its token's; a platform admin's choice through
X-Tenant-Id), so another tenant's user or client is simply not found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from amiflow_runtime.auth import Principal
from amiflow_runtime.logs import log_context
from sqlalchemy.exc import IntegrityError

from identity.adapters import store
from identity.adapters.crypto import (
    client_secret_hash,
    generated_client_id,
    generated_client_secret,
    generated_password,
    hash_password,
    password_matches,
)
from identity.core.access import Forbidden, check_grant, check_not_locking_out, check_reach, is_self
from identity.core.credentials import Client, InvalidCredential, Reach, User, checked_password, normal_username
from identity.runtime import IdentityRuntime
from identity.throttling import Throttle

log = logging.getLogger("identity.credentials")


class NotFound(Exception):
    """No such credential in the caller's tenant (answered 404, whether it exists elsewhere or not)."""


class Conflict(Exception):
    """The credential cannot be made as asked (answered 409 with the reason)."""


@dataclass(frozen=True)
class NewUser:
    username: str
    reach: Reach


@dataclass(frozen=True)
class NewClient:
    name: str
    reach: Reach


class Credentials:
    """The management API's decisions, over the runtime's database."""

    def __init__(self, runtime: IdentityRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.identity_settings
        self.throttle = Throttle(runtime)

    async def create_user(self, actor: Principal, new: NewUser) -> tuple[User, str]:
        """A new user of the actor's tenant and their generated password (shown once, stored hashed)."""
        check_grant(actor, new.reach.roles)
        return await self.add_user(actor.tenant, new, by=actor.subject)

    async def add_user(self, tenant: str, new: NewUser, *, by: str) -> tuple[User, str]:
        """Store a user the caller was allowed to make (the operators' CLI comes here directly)."""
        name = normal_username(new.username)
        password = generated_password()
        now = self.runtime.clock.now()
        user = User(name, tenant, new.reach, False, now, by, now, by, now)
        password_hash = await hash_password(password)
        try:
            async with self.runtime.sessions() as session, session.begin():
                await store.add_user(session, user, password_hash)
        except IntegrityError:
            raise Conflict(f"the username {name!r} is taken") from None
        with log_context(tenant_id=tenant):
            log.info("user %r created by %r with roles %s", name, by, ",".join(sorted(new.reach.roles)))
        return user, password

    async def user(self, actor: Principal, username: str) -> User:
        async with self.runtime.sessions() as session:
            found = await store.user_of(session, actor.tenant, username.strip().lower())
        if found is None:
            raise NotFound(f"no user {username!r}")
        return found

    async def users(self, actor: Principal, *, after: str | None, limit: int) -> list[User]:
        async with self.runtime.sessions() as session:
            return await store.users_of(session, actor.tenant, after=after, limit=limit)

    async def change_user(self, actor: Principal, username: str, reach: Reach, disabled: bool) -> User:
        """New roles, sites, duties, account and disabled flag of a user (the whole set, as PUT says)."""
        user = await self.user(actor, username)
        check_reach(actor, user.reach.roles)
        check_grant(actor, reach.roles)
        check_not_locking_out(actor, user.username, user.tenant, reach, disabled)
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            await store.change_user(session, user.tenant, user.username, reach, disabled, by=actor.subject, at=now)
        with log_context(tenant_id=user.tenant):
            log.info("user %r changed by %r: roles %s, %s", user.username, actor.subject,
                     ",".join(sorted(reach.roles)), "disabled" if disabled else "enabled")
        return replace(user, reach=reach, disabled=disabled, updated_at=now, updated_by=actor.subject)

    async def reset_password(self, actor: Principal, username: str) -> str:
        """A new generated password for a user the actor manages (shown once)."""
        user = await self.user(actor, username)
        check_reach(actor, user.reach.roles)
        password = generated_password()
        await self._store_password(user, password, by=actor.subject)
        return password

    async def set_own_password(self, actor: Principal, username: str, current: str, new: str) -> None:
        """The user's own choice of password, proven by the current one."""
        user = await self.user(actor, username)
        if not is_self(actor, user.username, user.tenant):
            raise Forbidden("only the user themselves chooses their password; an administrator resets it")
        # The current password is throttled like a login: a stolen token must not become a way to guess it.
        throttled = [f"username:{user.username}"]
        wait = await self.throttle.locked_for_s(throttled)
        if wait is not None:
            raise Forbidden(f"too many failed attempts: try again in {wait} s")
        async with self.runtime.sessions() as session:
            found = await store.user_named(session, user.username)
        if found is None or not await password_matches(found[1], current):
            await self.throttle.failed(throttled)
            raise Forbidden("the current password is wrong")
        if current == new:
            raise InvalidCredential("the new password is the current one")
        checked_password(new, username=user.username, min_length=self.settings.password_min_length)
        await self._store_password(user, new, by=actor.subject)

    async def _store_password(self, user: User, password: str, *, by: str) -> None:
        password_hash = await hash_password(password)
        async with self.runtime.sessions() as session, session.begin():
            await store.set_password_hash(session, user.username, password_hash, by=by,
                                          at=self.runtime.clock.now())
        with log_context(tenant_id=user.tenant):
            log.info("password of user %r set by %r", user.username, by)

    async def create_client(self, actor: Principal, new: NewClient) -> tuple[Client, str]:
        """A new client of the actor's tenant and its generated secret (shown once, stored hashed)."""
        check_grant(actor, new.reach.roles)
        return await self.add_client(actor.tenant, new, by=actor.subject)

    async def add_client(self, tenant: str, new: NewClient, *, by: str) -> tuple[Client, str]:
        secret = generated_client_secret()
        client = Client(generated_client_id(), tenant, new.name, new.reach, False, self.runtime.clock.now(), by)
        async with self.runtime.sessions() as session, session.begin():
            await store.add_client(session, client, client_secret_hash(secret))
        with log_context(tenant_id=tenant):
            log.info("client %r (%s) created by %r with roles %s", client.client_id, new.name, by,
                     ",".join(sorted(new.reach.roles)))
        return client, secret

    async def clients(self, actor: Principal, *, include_revoked: bool) -> list[Client]:
        async with self.runtime.sessions() as session:
            return await store.clients_of(session, actor.tenant, include_revoked=include_revoked)

    async def revoke_client(self, actor: Principal, client_id: str) -> None:
        """The client gets no more tokens; the ones it holds stay valid until they expire."""
        async with self.runtime.sessions() as session:
            client = await store.client_of(session, actor.tenant, client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}")
        check_reach(actor, client.reach.roles)
        async with self.runtime.sessions() as session, session.begin():
            await store.revoke_client(session, actor.tenant, client_id, by=actor.subject, at=self.runtime.clock.now())
        with log_context(tenant_id=actor.tenant):
            log.info("client %r revoked by %r", client_id, actor.subject)

    async def rotate_keys(self, actor: Principal) -> tuple[str, str | None]:
        """Retire the signing key now (a platform admin's decision: every tenant's tokens depend on it)."""
        if not actor.is_platform_admin:
            raise Forbidden("only a platform admin rotates the signing key")
        kid, retired = await self.runtime.keyring.rotate(f"rotated on demand by {actor.subject}")
        return kid, retired

