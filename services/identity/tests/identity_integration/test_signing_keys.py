"""Signing keys on SQLite and PostgreSQL: sealed at rest, published as a JWKS, rotated on demand and by age
(one new key however many replicas find it due), and a retired key's tokens valid exactly while it is published."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from amiflow_runtime.auth import AuthError, Role
from amiflow_runtime.testing import auth_headers
from cryptography.hazmat.primitives import serialization
from identity.adapters import store
from identity.adapters.crypto import KeyEncryptionKey, SealedKeyUnreadable, private_key_of
from identity.adapters.db import signing_keys
from identity.config import IdentitySettings
from identity.main import api
from pydantic import SecretStr
from sqlalchemy import select

from .conftest import Identity, claims_of, new_kek, start_identity

pytestmark = pytest.mark.integration


async def test_the_jwks_publishes_the_active_public_key_with_a_short_cache(identity: Identity) -> None:
    answer = await identity.http.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=300"
    [key] = answer.json()["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["use"] == "sig"
    assert "d" not in key  # the private part never leaves


async def test_discovery_names_issuer_token_endpoint_keys_and_grants(identity: Identity) -> None:
    answer = await identity.http.get("/.well-known/openid-configuration")
    document = answer.json()
    assert document["issuer"] == "urn:amiflow:identity"
    assert document["token_endpoint"] == "http://identity/oauth/token"
    assert document["jwks_uri"] == "http://identity/.well-known/jwks.json"
    assert document["grant_types_supported"] == ["password", "client_credentials"]
    assert "manage_access" in document["scopes_supported"]


async def test_the_private_key_is_sealed_at_rest_and_erased_at_retirement(identity: Identity) -> None:
    async with identity.runtime.sessions() as session:
        [row] = (await session.execute(select(signing_keys))).all()
    with pytest.raises(ValueError):
        serialization.load_der_private_key(row.private_key, password=None)  # not readable as stored
    with pytest.raises(Exception, match="does not open"):
        KeyEncryptionKey(b"\x00" * 32).open(row.kid, row.private_key)
    kek = identity.runtime.keyring.kek
    assert private_key_of(kek.open(row.kid, row.private_key)) is not None
    with pytest.raises(Exception, match="does not open"):
        kek.open("another-kid", row.private_key)  # a sealed key cannot be moved to another row
    await identity.runtime.keyring.rotate("test")
    async with identity.runtime.sessions() as session:
        retired = (await session.execute(select(signing_keys).where(signing_keys.c.kid == row.kid))).one()
    assert retired.private_key is None and retired.retired_at is not None


async def test_a_token_signed_before_a_rotation_verifies_until_its_key_leaves_the_jwks(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    before = await identity.login("alice", password)
    rotated = await identity.http.post("/v1/keys/rotate", headers=auth_headers("demo"))
    assert rotated.status_code == 200, rotated.text
    old_kid, new_kid = rotated.json()["retired_kid"], rotated.json()["kid"]
    after = await identity.login("alice", password)
    assert claims_of(before) and old_kid != new_kid
    assert [k["kid"] for k in (await identity.http.get("/.well-known/jwks.json")).json()["keys"]] == [new_kid, old_kid]
    assert (await identity.verify(before))["sub"] == "alice"
    assert (await identity.verify(after))["sub"] == "alice"
    # Past the longest token lifetime (clients': 1 h) and the leeway, the old key is gone, and so is its token.
    identity.clock.advance(timedelta(seconds=3600 + identity.settings.auth_leeway_s + 1))
    assert [k["kid"] for k in (await identity.http.get("/.well-known/jwks.json")).json()["keys"]] == [new_kid]
    with pytest.raises(AuthError, match="does not publish"):
        await identity.verify(before)


async def test_only_a_platform_admin_rotates_the_key(identity: Identity) -> None:
    refused = await identity.http.post("/v1/keys/rotate", headers=auth_headers("riverside", roles=("tenant_admin",)))
    assert refused.status_code == 403 and "platform admin" in refused.json()["detail"]["reason"]


async def test_an_old_key_is_rotated_once_however_many_replicas_find_it_due(identity: Identity, database_url: str,
                                                                            tmp_path: Path) -> None:
    first = await identity.runtime.keyring.ensure_current()
    assert await identity.runtime.keyring.ensure_current() == first  # young: kept
    replica = await start_identity(database_url, tmp_path / "replica", identity.clock,
                                   key_encryption_key=identity.settings.key_encryption_key)
    try:
        identity.clock.advance(timedelta(days=identity.settings.key_rotation_days))
        kids = await asyncio.gather(identity.runtime.keyring.ensure_current(),
                                    replica.runtime.keyring.ensure_current(),
                                    identity.runtime.keyring.ensure_current())
        assert len(set(kids)) == 1 and kids[0] != first
        async with identity.runtime.sessions() as session:
            keys = await store.all_keys(session)
        assert [k.info.kid for k in keys if k.info.retired_at is None] == [kids[0]]
        assert len(keys) == 2
    finally:
        await replica.http.aclose()
        await replica.runtime.engine.dispose()


async def test_a_replica_with_another_key_encryption_key_signs_nothing_and_says_why(identity: Identity,
                                                                                    database_url: str,
                                                                                    tmp_path: Path) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    settings = IdentitySettings(database_url=database_url, data_dir=tmp_path / "wrong",
                                key_encryption_key=SecretStr(new_kek()))
    app = api(settings)
    runtime = app.state.runtime
    try:
        with pytest.raises(SealedKeyUnreadable, match="every replica needs the same IDENTITY_KEY_ENCRYPTION_KEY"):
            await runtime.migrate()  # what startup runs: the process reports itself not live, with this reason
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as http:
            answer = await http.post("/oauth/token", data={"grant_type": "password", "username": "alice",
                                                           "password": password})
        assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
    finally:
        await runtime.engine.dispose()


async def test_keys_that_cannot_be_read_answer_503_not_a_crash(tmp_path: Path) -> None:
    unmigrated = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    for jwks_file, status in ((IdentitySettings().auth_jwks_file, 200), (None, 503)):
        app = api(IdentitySettings(database_url=unmigrated, data_dir=tmp_path, auth_jwks_file=jwks_file))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://identity") as http:
                answer = await http.get("/v1/me", headers=auth_headers("riverside", roles=("auditor",)))
            # With the suite's key file, its tokens are still checked; with no source at all, 503.
            assert answer.status_code == status, answer.text
        finally:
            await app.state.runtime.engine.dispose()
