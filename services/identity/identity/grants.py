"""Issuing access tokens: the password grant (people) and the client credentials grant (other systems).

Order of the checks, and why:
1. a name or address under lockout is refused before any password is looked at (a locked-out guesser
   learns nothing, and burns no Argon2 time of ours);
2. the secret is checked — against a decoy hash when the name does not exist, so that an unknown name and a
   wrong password take as long and answer alike;
3. only a caller who proved the secret learns that the credential is disabled.
No database transaction is open while a password is hashed: on SQLite it would hold the write lock.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from amiflow_runtime.auth import sign
from amiflow_runtime.logs import log_context

from identity.adapters import store
from identity.adapters.crypto import (
    client_secret_matches,
    hash_password,
    needs_rehash,
    password_matches,
)
from identity.core.credentials import Reach
from identity.core.tokens import (
    Grantee,
    InvalidClient,
    InvalidGrant,
    access_token_claims,
    granted_scope,
    parse_scope,
    token_answer,
)
from identity.runtime import IdentityRuntime
from identity.throttling import Throttle

log = logging.getLogger("identity.tokens")
NAME_MAX = 128  # longer than any username or client id: a name cut to this finds nobody, and fits the throttle key


def _grantee(subject: str, tenant: str, reach: Reach) -> Grantee:
    return Grantee(subject, tenant, reach.roles, reach.sites, reach.duties, reach.account_id, reach.scopes)


class TokenIssuer:
    """The token endpoint's decisions, over the runtime's database and keys."""

    def __init__(self, runtime: IdentityRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.identity_settings
        self.throttle = Throttle(runtime)

    async def _signed(self, grantee: Grantee, scope_text: str | None, lifetime_s: int) -> dict[str, Any]:
        scope = granted_scope(grantee, parse_scope(scope_text))
        kid, key = await self.runtime.keyring.signing_key()
        claims = access_token_claims(grantee, scope=scope, issuer=self.settings.auth_issuer,
                                     audience=self.settings.auth_audience, now=self.runtime.clock.now(),
                                     lifetime_s=lifetime_s, token_id=uuid.uuid4().hex)
        return token_answer(sign(claims, key, kid), lifetime_s=lifetime_s, scope=scope)

    async def password_grant(self, username: str, password: str, scope_text: str | None,
                             address: str) -> dict[str, Any]:
        """A token for the user whose username and password these are, in their own tenant."""
        parse_scope(scope_text)  # a malformed scope is refused before anything is counted
        name = username.strip().lower()[:NAME_MAX]
        keys = [f"username:{name}", f"address:{address}"]
        wait = await self.throttle.locked_for_s(keys)
        if wait is not None:
            log.warning("password grant for %r from %s refused: locked for %d s", name, address, wait)
            raise InvalidGrant(f"too many failed attempts: try again in {wait} s", retry_after_s=wait)
        async with self.runtime.sessions() as session:
            found = await store.user_named(session, name)
        if not await password_matches(found[1] if found else None, password):
            wait = await self.throttle.failed(keys)
            log.warning("password grant for %r from %s refused: wrong username or password%s", name, address,
                        f"; locked for {wait} s" if wait else "")
            raise InvalidGrant("the username or password is wrong", retry_after_s=wait)
        assert found is not None
        user, stored_hash = found
        with log_context(tenant_id=user.tenant):
            if user.disabled:
                log.warning("password grant for %r from %s refused: the user is disabled", name, address)
                raise InvalidGrant("this user is disabled")
            await self.throttle.succeeded(keys[0])
            if needs_rehash(stored_hash):
                rehashed = await hash_password(password)
                async with self.runtime.sessions() as session, session.begin():
                    await store.set_password_hash(session, name, rehashed, by=None, at=self.runtime.clock.now())
            answer = await self._signed(_grantee(user.username, user.tenant, user.reach), scope_text,
                                        self.settings.user_token_lifetime_s)
            log.info("token issued to user %r from %s", name, address)
            return answer

    async def client_grant(self, client_id: str, secret: str, scope_text: str | None, address: str) -> dict[str, Any]:
        """A token for the client these credentials authenticate, in its own tenant."""
        parse_scope(scope_text)
        client_id = client_id[:NAME_MAX]
        keys = [f"client:{client_id}", f"address:{address}"]
        wait = await self.throttle.locked_for_s(keys)
        if wait is not None:
            log.warning("client grant for %r from %s refused: locked for %d s", client_id, address, wait)
            raise InvalidClient(f"too many failed attempts: try again in {wait} s", retry_after_s=wait)
        async with self.runtime.sessions() as session:
            found = await store.client_named(session, client_id)
        if not client_secret_matches(found[1] if found else None, secret):
            wait = await self.throttle.failed(keys)
            log.warning("client grant for %r from %s refused: unknown client or wrong secret%s", client_id, address,
                        f"; locked for {wait} s" if wait else "")
            raise InvalidClient("client authentication failed", retry_after_s=wait)
        assert found is not None
        client = found[0]
        with log_context(tenant_id=client.tenant):
            if client.disabled:
                log.warning("client grant for %r from %s refused: the client is revoked", client_id, address)
                raise InvalidClient("this client is revoked")
            await self.throttle.succeeded(keys[0])
            answer = await self._signed(_grantee(client.client_id, client.tenant, client.reach), scope_text,
                                        self.settings.client_token_lifetime_s)
            log.info("token issued to client %r from %s", client_id, address)
            return answer
