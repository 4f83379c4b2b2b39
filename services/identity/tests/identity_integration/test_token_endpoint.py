"""The token endpoint on SQLite and PostgreSQL: both grants, RFC 6749 errors, guessing slowed by lockouts
shared between replicas, disabled credentials refused, scopes narrowing, tokens expiring."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from amiflow_runtime.auth import AuthError, Role

from .conftest import Identity, bearer, claims_of, start_identity, user_change

pytestmark = pytest.mark.integration


async def test_a_person_logs_in_with_a_password_and_gets_a_token_of_their_own_tenant(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR], sites=["b1"], duties=["water"])
    answer = await identity.token(grant_type="password", username="Alice", password=password)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store" and answer.headers["pragma"] == "no-cache"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and "scope" not in body
    claims = await identity.verify(body["access_token"])
    assert claims["sub"] == "alice" and claims["tenant"] == "riverside" and claims["roles"] == ["operator"]
    assert claims["sites"] == ["b1"] and claims["duties"] == ["water"]
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"] and claims["jti"]
    me = await identity.http.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["roles"] == ["operator"] and me.json()["permissions"] == ["operate", "read"]


async def test_no_tenant_parameter_moves_a_login_into_another_tenant(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    token = await identity.login("alice", password, tenant="hilltop")
    assert claims_of(token)["tenant"] == "riverside"
    me = await identity.http.get("/v1/me", headers={**bearer(token), "X-Tenant-Id": "hilltop"})
    assert me.status_code == 403


async def test_a_client_authenticates_by_http_basic_or_by_form_fields(identity: Identity) -> None:
    client_id, secret = await identity.add_client("riverside", [Role.INTEGRATOR])
    by_basic = await identity.token(grant_type="client_credentials", auth=(client_id, secret))
    by_form = await identity.token(grant_type="client_credentials", client_id=client_id, client_secret=secret)
    for answer in (by_basic, by_form):
        assert answer.status_code == 200, answer.text
        assert answer.json()["expires_in"] == 3600
        claims = await identity.verify(answer.json()["access_token"])
        assert claims["sub"] == client_id and claims["roles"] == ["integrator"] and claims["tenant"] == "riverside"


async def test_a_wrong_client_secret_is_invalid_client_with_a_challenge(identity: Identity) -> None:
    client_id, _secret = await identity.add_client("riverside", [Role.INTEGRATOR])
    for answer in (await identity.token(grant_type="client_credentials", auth=(client_id, "guess")),
                   await identity.token(grant_type="client_credentials", auth=("client_nobody", "guess"))):
        assert answer.status_code == 401
        assert answer.json() == {"error": "invalid_client", "error_description": "client authentication failed"}
        assert answer.headers["www-authenticate"].startswith("Basic")


async def test_a_wrong_password_and_an_unknown_user_answer_alike(identity: Identity) -> None:
    await identity.add_user("riverside", "alice", [Role.OPERATOR])
    wrong = await identity.token(grant_type="password", username="alice", password="not-her-password")
    unknown = await identity.token(grant_type="password", username="mallory", password="not-her-password")
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json() == {"error": "invalid_grant",
                                              "error_description": "the username or password is wrong"}


@pytest.mark.parametrize(("form", "error"), [
    ({}, "invalid_request"),
    ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
    ({"grant_type": "password", "username": "alice"}, "invalid_request"),
    ({"grant_type": "password", "username": "alice", "password": "pw", "client_secret": "s"}, "invalid_request"),
    ({"grant_type": "password", "username": "alice", "password": "pw", "scope": "read everything"}, "invalid_scope"),
    ({"grant_type": "client_credentials"}, "invalid_client"),
])
async def test_a_malformed_request_gets_its_rfc6749_error(identity: Identity, form: dict[str, str],
                                                          error: str) -> None:
    answer = await identity.token(**form)
    assert answer.json()["error"] == error, answer.text
    assert answer.status_code == (401 if error == "invalid_client" else 400)
    assert answer.json()["error_description"]


async def test_an_overlong_name_is_refused_like_any_unknown_one(identity: Identity) -> None:
    user = await identity.token(grant_type="password", username="a" * 300, password="whatever-it-is")
    client = await identity.token(grant_type="client_credentials", auth=("c" * 300, "whatever-it-is"))
    assert (user.status_code, user.json()["error"]) == (400, "invalid_grant")
    assert (client.status_code, client.json()["error"]) == (401, "invalid_client")


async def test_a_json_body_a_repeated_parameter_or_a_huge_form_is_an_invalid_request(identity: Identity) -> None:
    as_json = await identity.http.post("/oauth/token", json={"grant_type": "password"})
    repeated = await identity.http.post("/oauth/token", content=b"grant_type=password&grant_type=client_credentials",
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    huge = await identity.http.post("/oauth/token", content=b"grant_type=password&username=" + b"a" * 10_000,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert as_json.json()["error"] == repeated.json()["error"] == huge.json()["error"] == "invalid_request"
    assert "more than once" in repeated.json()["error_description"]
    assert "larger than" in huge.json()["error_description"]


async def test_guessing_a_password_locks_the_name_with_a_doubling_back_off(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    answers = [await identity.token(grant_type="password", username="alice", password=f"guess-{i}")
               for i in range(5)]
    assert [a.headers.get("retry-after") for a in answers] == [None, None, None, None, "60"]
    refused = await identity.token(grant_type="password", username="alice", password=password)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "too many failed attempts" in refused.json()["error_description"] and refused.headers["retry-after"]
    identity.clock.advance(timedelta(seconds=61))
    again = await identity.token(grant_type="password", username="alice", password="guess-6")
    assert again.headers["retry-after"] == "120"  # the next failure in the window locks for twice as long
    identity.clock.advance(timedelta(seconds=121))
    assert (await identity.token(grant_type="password", username="alice", password=password)).status_code == 200


async def test_a_lockout_is_shared_by_every_api_replica(identity: Identity, database_url: str,
                                                        tmp_path: Path) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    replica = await start_identity(database_url, tmp_path / "replica", identity.clock,
                                   key_encryption_key=identity.settings.key_encryption_key)
    try:
        for i in range(5):
            await identity.token(grant_type="password", username="alice", password=f"guess-{i}")
        on_replica = await replica.token(grant_type="password", username="alice", password=password)
        assert on_replica.status_code == 400 and "too many failed attempts" in on_replica.json()["error_description"]
    finally:
        await replica.http.aclose()
        await replica.runtime.engine.dispose()


async def test_an_address_guessing_many_names_is_locked_but_others_are_not(database_url: str, tmp_path: Path,
                                                                           identity: Identity) -> None:
    strict = await start_identity(database_url, tmp_path / "strict", identity.clock, address_failure_limit=3,
                                  key_encryption_key=identity.settings.key_encryption_key)
    try:
        password = await strict.add_user("riverside", "alice", [Role.OPERATOR])
        for name in ("bob", "carol", "dave"):
            await strict.token("198.51.100.9", grant_type="password", username=name, password="guess-it")
        locked = await strict.token("198.51.100.9", grant_type="password", username="alice", password=password)
        assert locked.status_code == 400 and "too many failed attempts" in locked.json()["error_description"]
        elsewhere = await strict.token("192.0.2.1", grant_type="password", username="alice", password=password)
        assert elsewhere.status_code == 200
    finally:
        await strict.http.aclose()
        await strict.runtime.engine.dispose()


async def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(database_url: str, tmp_path: Path,
                                                                         identity: Identity) -> None:
    proxied = await start_identity(database_url, tmp_path / "proxied", identity.clock, address_failure_limit=2,
                                   trusted_proxies="10.0.0.0/8",
                                   key_encryption_key=identity.settings.key_encryption_key)
    try:
        password = await proxied.add_user("riverside", "alice", [Role.OPERATOR])
        guesser, colleague = {"X-Forwarded-For": "198.51.100.20"}, {"X-Forwarded-For": "198.51.100.21"}
        for name in ("bob", "carol"):
            await proxied.token("10.0.0.5", headers=guesser, grant_type="password", username=name, password="guess")
        locked = await proxied.token("10.0.0.5", headers=guesser, grant_type="password", username="alice",
                                     password=password)
        assert "too many failed attempts" in locked.json()["error_description"]
        through_the_same_proxy = await proxied.token("10.0.0.5", headers=colleague, grant_type="password",
                                                     username="alice", password=password)
        assert through_the_same_proxy.status_code == 200
        # From a peer that is no trusted proxy, X-Forwarded-For is not believed: the peer is what counts.
        spoofed = await proxied.token("192.0.2.66", headers=guesser, grant_type="password", username="alice",
                                      password=password)
        assert spoofed.status_code == 200
    finally:
        await proxied.http.aclose()
        await proxied.runtime.engine.dispose()


async def test_a_disabled_user_or_a_revoked_client_gets_no_token(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    client_id, secret = await identity.add_client("riverside", [Role.INTEGRATOR])
    admin = await identity.login("boss", await identity.add_user("riverside", "boss", [Role.TENANT_ADMIN]))
    changed = await identity.http.put("/v1/users/alice", headers=bearer(admin),
                                      json=user_change("operator", disabled=True))
    assert changed.status_code == 200, changed.text
    revoked = await identity.http.delete(f"/v1/clients/{client_id}", headers=bearer(admin))
    assert revoked.status_code == 204
    user_answer = await identity.token(grant_type="password", username="alice", password=password)
    assert user_answer.json() == {"error": "invalid_grant", "error_description": "this user is disabled"}
    client_answer = await identity.token(grant_type="client_credentials", auth=(client_id, secret))
    assert client_answer.status_code == 401 and client_answer.json()["error_description"] == "this client is revoked"


async def test_a_scope_narrows_the_token_and_cannot_widen_it(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    narrowed = await identity.token(grant_type="password", username="alice", password=password, scope="read")
    assert narrowed.json()["scope"] == "read"
    me = await identity.http.get("/v1/me", headers=bearer(narrowed.json()["access_token"]))
    assert me.json()["permissions"] == ["read"]
    widened = await identity.token(grant_type="password", username="alice", password=password,
                                   scope="read manage_access")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"


async def test_a_clients_own_scopes_are_in_every_token_it_gets(identity: Identity) -> None:
    client_id, secret = await identity.add_client("riverside", [Role.INTEGRATOR], scopes=["ingest"])
    answer = await identity.token(grant_type="client_credentials", auth=(client_id, secret))
    assert answer.json()["scope"] == "ingest"
    assert (await identity.verify(answer.json()["access_token"]))["scope"] == "ingest"


async def test_a_token_expires_after_its_lifetime(identity: Identity) -> None:
    password = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    identity.clock.advance(timedelta(minutes=-10))
    young = await identity.login("alice", password)  # 10 of its 15 minutes gone
    identity.clock.advance(timedelta(minutes=-6))
    old = await identity.login("alice", password)  # issued 16 minutes ago
    assert (await identity.http.get("/v1/me", headers=bearer(young))).status_code == 200
    expired = await identity.http.get("/v1/me", headers=bearer(old))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]["reason"]
    with pytest.raises(AuthError, match="expired"):
        await identity.verify(old)
