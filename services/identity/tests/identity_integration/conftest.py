"""Identity's API in-process over ASGI, on each database backend, with a clock the tests move."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from amiflow_runtime.auth import Role, TokenVerifier
from amiflow_runtime.clock import FrozenClock
from fastapi import FastAPI
from identity.app import Credentials, NewClient, NewUser
from identity.config import IdentitySettings
from identity.core.credentials import checked_reach
from identity.main import api
from identity.runtime import IdentityRuntime
from pydantic import SecretStr

ADDRESS = "203.0.113.7"


def new_kek() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass
class Identity:
    app: FastAPI
    runtime: IdentityRuntime
    settings: IdentitySettings
    http: httpx.AsyncClient
    clock: FrozenClock
    folder: Path

    async def token(self, address: str = ADDRESS, auth: tuple[str, str] | None = None,
                    headers: dict[str, str] | None = None, **form: str) -> httpx.Response:
        """POST /oauth/token from `address` with these form fields."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as client:
            return await client.post("/oauth/token", data=form, auth=auth, headers=headers)

    async def login(self, username: str, password: str, **form: str) -> str:
        answer = await self.token(grant_type="password", username=username, password=password, **form)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    async def add_user(self, tenant: str, username: str, roles: Sequence[Role], **reach: Any) -> str:
        """A user made as the operators' CLI makes them; returns the generated password."""
        new = NewUser(username, checked_reach(roles, **reach))
        _user, password = await Credentials(self.runtime).add_user(tenant, new, by="test")
        return password

    async def add_client(self, tenant: str, roles: Sequence[Role], **reach: Any) -> tuple[str, str]:
        new = NewClient("test client", checked_reach(roles, for_client=True, **reach))
        client, secret = await Credentials(self.runtime).add_client(tenant, new, by="test")
        return client.client_id, secret

    async def jwks_file(self, name: str = "jwks.json") -> Path:
        """The JWKS as answered now, in a file a TokenVerifier (or another service) can be pointed at."""
        answer = await self.http.get("/.well-known/jwks.json")
        assert answer.status_code == 200
        path = self.folder / name
        path.write_text(answer.text)
        return path

    async def verify(self, token: str) -> dict[str, Any]:
        """Check `token` as another service would, against the JWKS answered now."""
        verifier = TokenVerifier(issuer=self.settings.auth_issuer, audience=self.settings.auth_audience,
                                 jwks_file=await self.jwks_file(f"jwks-{len(os.listdir(self.folder))}.json"))
        return await verifier.claims(token)


def user_change(*roles: str, disabled: bool = False, sites: list[str] | None = None,
                duties: list[str] | None = None, account_id: str | None = None) -> dict[str, Any]:
    """A PUT /v1/users/{username} body: every field, as PUT requires."""
    return {"roles": list(roles), "sites": sites, "duties": duties, "account_id": account_id, "disabled": disabled}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_identity(database_url: str, folder: Path, clock: FrozenClock, **overrides: Any) -> Identity:
    """An identity API on `database_url`, migrated, with its first signing key."""
    os.makedirs(folder, exist_ok=True)
    options: dict[str, Any] = {"database_url": database_url, "data_dir": folder,
                               "key_encryption_key": SecretStr(new_kek()), **overrides}
    settings = IdentitySettings(**options)
    app = api(settings)
    runtime: IdentityRuntime = app.state.runtime
    runtime.clock = clock
    await runtime.migrate()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ADDRESS, 40000)),
                             base_url="http://identity")
    return Identity(app, runtime, settings, http, clock, folder)


@pytest.fixture
async def identity(database_url: str, tmp_path: Path) -> AsyncIterator[Identity]:
    # Near the wall clock: other services check `exp` against the real time.
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    running = await start_identity(database_url, tmp_path / "identity", clock)
    try:
        yield running
    finally:
        await running.http.aclose()
        await running.runtime.engine.dispose()


def claims_of(token: str) -> dict[str, Any]:
    """The token's claims, unverified (for looking, not for trusting)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
