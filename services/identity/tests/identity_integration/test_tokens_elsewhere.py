"""Identity's tokens at another service (notify's real API app, keys from identity's JWKS), and the operators'
CLI working on the identity database directly: the first admin, `amiflow up`'s simulator client, a new user."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import httpx
import pytest
from amiflow_runtime.auth import Role
from notify.config import NotifySettings
from notify.main import api as notify_api

from .conftest import Identity, bearer, claims_of, user_change

pytestmark = pytest.mark.integration


async def test_another_service_accepts_the_token_and_keeps_accepting_it_until_expiry(identity: Identity,
                                                                                      tmp_path: Path) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    token = await identity.login("alice", password)
    settings = NotifySettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}", auth_jwks_url=None,
                              auth_jwks_file=await identity.jwks_file())
    app = notify_api(settings)
    await app.state.runtime.migrate()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as notify:
            assert (await notify.get("/v1/notifications", headers=bearer(token))).status_code == 200
            assert (await notify.get("/v1/notifications", headers=bearer(token + "x"))).status_code == 401
            admin = await identity.login("boss", await identity.add_user("riverside", "boss", [Role.TENANT_ADMIN]))
            disabled = await identity.http.put("/v1/users/alice", headers=bearer(admin),
                                               json=user_change("operator", disabled=True))
            assert disabled.status_code == 200
            # Tokens are stateless: disabling stops new tokens at once, and the ones issued expire within
            # the user token lifetime (15 minutes) — the documented window, kept short for this reason.
            assert (await identity.token(grant_type="password", username="alice", password=password)).status_code == 400
            still = await notify.get("/v1/notifications", headers=bearer(token))
            assert still.status_code == 200
            assert claims_of(token)["exp"] - claims_of(token)["iat"] == identity.settings.user_token_lifetime_s
    finally:
        await app.state.runtime.engine.dispose()


async def _tool(identity: Identity, *args: str) -> tuple[int, str]:
    kek = identity.settings.key_encryption_key
    assert kek is not None
    env = {**os.environ, "IDENTITY_DATABASE_URL": identity.settings.resolved_database_url,
           "IDENTITY_KEY_ENCRYPTION_KEY": kek.get_secret_value(), "AMIFLOW_DATA_DIR": str(identity.folder),
           "LOG_FORMAT": "text", "AMIFLOW_DEFAULT_TENANT": "demo"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "identity.main", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_a_user_made_with_the_cli_logs_in_with_the_password_it_printed(identity: Identity) -> None:
    code, output = await _tool(identity, "create-user", "--tenant", "riverside", "--username", "carol",
                               "--roles", "operator", "--sites", "b1,b2", "--duties", "water")
    assert code == 0, output
    [password] = [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("password (shown")]
    token = await identity.login("carol", password)
    assert claims_of(token)["sites"] == ["b1", "b2"] and claims_of(token)["tenant"] == "riverside"
    code, output = await _tool(identity, "create-user", "--tenant", "riverside", "--username", "dan",
                               "--roles", "customer")
    assert code == 2 and "names their account" in output


async def test_bootstrap_makes_the_first_admin_and_the_simulator_client_once(identity: Identity,
                                                                            tmp_path: Path) -> None:
    password_file, client_file = tmp_path / "boot" / "admin-password", tmp_path / "boot" / "simulator-client.json"
    args = ("bootstrap", "--admin-password-file", str(password_file), "--simulator-client-file", str(client_file))
    code, output = await _tool(identity, *args)
    assert code == 0, output
    password = password_file.read_text().strip()
    assert password not in output and str(password_file) in output
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600 == stat.S_IMODE(client_file.stat().st_mode)
    admin = claims_of(await identity.login("admin", password))
    assert admin["roles"] == ["platform_admin"] and admin["tenant"] == "demo"
    simulator = json.loads(client_file.read_text())
    answer = await identity.token(grant_type="client_credentials",
                                  auth=(simulator["client_id"], simulator["client_secret"]))
    assert claims_of(answer.json()["access_token"])["roles"] == ["tenant_admin"]
    code, output = await _tool(identity, *args)
    assert code == 0 and "created" not in output
    assert password_file.read_text().strip() == password and json.loads(client_file.read_text()) == simulator
