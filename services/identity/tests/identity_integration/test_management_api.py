"""The management API on SQLite and PostgreSQL: tenant admins manage their own tenant only (another tenant's
users are not found), nobody grants a role they do not hold, secrets are shown once, passwords are reset by
admins and chosen by their owners."""

from __future__ import annotations

import pytest
from amiflow_runtime.auth import Role
from amiflow_runtime.testing import auth_headers

from .conftest import Identity, bearer, user_change

pytestmark = pytest.mark.integration

RIVERSIDE_ADMIN = auth_headers("riverside", roles=("tenant_admin",), subject="boss")


async def test_a_tenant_admin_makes_a_user_whose_password_is_shown_once(identity: Identity) -> None:
    made = await identity.http.post("/v1/users", headers=RIVERSIDE_ADMIN, json={
        "username": "Alice", "roles": ["operator"], "sites": ["b1"], "duties": ["water"]})
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    body = made.json()
    assert body["user"]["username"] == "alice" and body["user"]["tenant"] == "riverside"
    assert body["user"]["created_by"] == "boss" and body["user"]["disabled"] is False
    token = await identity.login("alice", body["password"])
    assert (await identity.http.get("/v1/me", headers=bearer(token))).json()["subject"] == "alice"
    shown = await identity.http.get("/v1/users/alice", headers=RIVERSIDE_ADMIN)
    assert shown.status_code == 200 and "password" not in shown.json() and body["password"] not in shown.text


async def test_another_tenants_user_is_not_found_for_reading_changing_or_resetting(identity: Identity) -> None:
    await identity.add_user("hilltop", "henry", [Role.OPERATOR])
    for answer in (await identity.http.get("/v1/users/henry", headers=RIVERSIDE_ADMIN),
                   await identity.http.put("/v1/users/henry", headers=RIVERSIDE_ADMIN,
                                           json=user_change("operator", disabled=True)),
                   await identity.http.post("/v1/users/henry/password", headers=RIVERSIDE_ADMIN, json={})):
        assert answer.status_code == 404, answer.text
        assert answer.json()["detail"] == {"problem": "not_found", "reason": "no user 'henry'"}
    listed = await identity.http.get("/v1/users", headers=RIVERSIDE_ADMIN)
    assert [u["username"] for u in listed.json()] == []


async def test_a_platform_admin_acts_in_another_tenant_by_naming_it(identity: Identity) -> None:
    await identity.add_user("hilltop", "henry", [Role.OPERATOR])
    seen = await identity.http.get("/v1/users/henry", headers=auth_headers("hilltop"))
    assert seen.status_code == 200 and seen.json()["tenant"] == "hilltop"
    elsewhere = await identity.http.get("/v1/users/henry", headers={**RIVERSIDE_ADMIN, "X-Tenant-Id": "hilltop"})
    assert elsewhere.status_code == 403  # a tenant admin cannot name another tenant at all


async def test_a_tenant_admin_cannot_grant_platform_admin(identity: Identity) -> None:
    made = await identity.http.post("/v1/users", headers=RIVERSIDE_ADMIN,
                                    json={"username": "mallory", "roles": ["platform_admin"]})
    assert made.status_code == 403 and "cannot grant platform_admin" in made.json()["detail"]["reason"]
    await identity.add_user("riverside", "alice", [Role.OPERATOR])
    raised = await identity.http.put("/v1/users/alice", headers=RIVERSIDE_ADMIN,
                                     json=user_change("operator", "platform_admin"))
    assert raised.status_code == 403
    by_platform = await identity.http.post("/v1/users", headers=auth_headers("riverside"),
                                           json={"username": "pat", "roles": ["platform_admin"]})
    assert by_platform.status_code == 201


async def test_a_tenant_admin_cannot_change_a_platform_admin_of_their_tenant(identity: Identity) -> None:
    await identity.add_user("riverside", "pat", [Role.PLATFORM_ADMIN])
    for answer in (await identity.http.put("/v1/users/pat", headers=RIVERSIDE_ADMIN,
                                           json=user_change("platform_admin", disabled=True)),
                   await identity.http.post("/v1/users/pat/password", headers=RIVERSIDE_ADMIN, json={})):
        assert answer.status_code == 403 and "platform_admin" in answer.json()["detail"]["reason"]


@pytest.mark.parametrize("role", ["operator", "integrator", "customer"])
async def test_roles_without_manage_access_cannot_make_or_list_credentials(identity: Identity, role: str) -> None:
    headers = auth_headers("riverside", roles=(role,), account_id="acc-1" if role == "customer" else None)
    made = await identity.http.post("/v1/users", headers=headers, json={"username": "x", "roles": ["customer"],
                                                                        "account_id": "acc-2"})
    assert made.status_code == 403
    assert (await identity.http.get("/v1/users", headers=headers)).status_code == 403


async def test_an_auditor_reads_who_holds_which_role_and_changes_nothing(identity: Identity) -> None:
    await identity.add_user("riverside", "alice", [Role.OPERATOR])
    auditor = auth_headers("riverside", roles=("auditor",))
    listed = await identity.http.get("/v1/users", headers=auditor)
    assert [(u["username"], u["roles"]) for u in listed.json()] == [("alice", ["operator"])]
    changed = await identity.http.put("/v1/users/alice", headers=auditor, json=user_change("tenant_admin"))
    assert changed.status_code == 403


async def test_an_admin_cannot_lock_themselves_out(identity: Identity) -> None:
    await identity.add_user("riverside", "boss", [Role.TENANT_ADMIN])
    disabled = await identity.http.put("/v1/users/boss", headers=RIVERSIDE_ADMIN,
                                       json=user_change("tenant_admin", disabled=True))
    demoted = await identity.http.put("/v1/users/boss", headers=RIVERSIDE_ADMIN, json=user_change("operator"))
    assert disabled.status_code == demoted.status_code == 409


async def test_an_incoherent_user_is_refused_with_the_reason(identity: Identity) -> None:
    for body, reason in (({"username": "c1", "roles": ["customer"]}, "names their account"),
                         ({"username": "o1", "roles": ["operator"], "duties": ["steam"]}, "unknown duty"),
                         ({"username": "bad_name", "roles": ["operator"]}, "username"),
                         ({"username": "o2", "roles": []}, "")):
        answer = await identity.http.post("/v1/users", headers=RIVERSIDE_ADMIN, json=body)
        assert answer.status_code == 422, answer.text
        assert reason in answer.text


async def test_a_username_is_unique_across_tenants(identity: Identity) -> None:
    await identity.add_user("hilltop", "alice", [Role.OPERATOR])
    taken = await identity.http.post("/v1/users", headers=RIVERSIDE_ADMIN,
                                     json={"username": "alice", "roles": ["operator"]})
    assert taken.status_code == 409 and taken.json()["detail"]["reason"] == "the username 'alice' is taken"
    assert "hilltop" not in taken.text


async def test_an_admin_resets_a_password_and_the_old_one_stops_working(identity: Identity) -> None:
    old = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    reset = await identity.http.post("/v1/users/alice/password", headers=RIVERSIDE_ADMIN, json={})
    assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
    new = reset.json()["password"]
    assert (await identity.token(grant_type="password", username="alice", password=old)).status_code == 400
    assert await identity.login("alice", new)


async def test_a_user_chooses_their_own_password_by_proving_the_current_one(identity: Identity) -> None:
    current = await identity.add_user("riverside", "alice", [Role.OPERATOR])
    token = bearer(await identity.login("alice", current))
    wrong = await identity.http.post("/v1/users/alice/password", headers=token,
                                     json={"current_password": "not-it", "new_password": "a long river at dawn"})
    assert wrong.status_code == 403 and wrong.json()["detail"]["reason"] == "the current password is wrong"
    weak = await identity.http.post("/v1/users/alice/password", headers=token,
                                    json={"current_password": current, "new_password": "short"})
    assert weak.status_code == 422 and "at least 12" in weak.text
    chosen = await identity.http.post("/v1/users/alice/password", headers=token,
                                      json={"current_password": current, "new_password": "a long river at dawn"})
    assert chosen.status_code == 204
    assert await identity.login("alice", "a long river at dawn")
    other = await identity.add_user("riverside", "bob", [Role.OPERATOR])
    not_hers = await identity.http.post("/v1/users/bob/password", headers=token,
                                        json={"current_password": other, "new_password": "a long river at dusk"})
    assert not_hers.status_code == 403
    assert (await identity.http.post("/v1/users/bob/password", headers=token, json={})).status_code == 403


async def test_a_client_secret_is_shown_once_and_a_revoked_client_stays_listed(identity: Identity) -> None:
    made = await identity.http.post("/v1/clients", headers=RIVERSIDE_ADMIN, json={
        "name": "SCADA bridge", "roles": ["integrator"], "scopes": ["ingest", "read"]})
    assert made.status_code == 201, made.text
    client_id, secret = made.json()["client"]["client_id"], made.json()["client_secret"]
    assert client_id.startswith("client_") and made.json()["client"]["scopes"] == ["ingest", "read"]
    listed = await identity.http.get("/v1/clients", headers=RIVERSIDE_ADMIN)
    assert [c["client_id"] for c in listed.json()] == [client_id] and secret not in listed.text
    assert (await identity.http.delete(f"/v1/clients/{client_id}", headers=RIVERSIDE_ADMIN)).status_code == 204
    assert (await identity.http.get("/v1/clients", headers=RIVERSIDE_ADMIN)).json() == []
    revoked = await identity.http.get("/v1/clients", headers=RIVERSIDE_ADMIN, params={"include_revoked": "true"})
    assert revoked.json()[0]["revoked"] is True and revoked.json()[0]["revoked_by"] == "boss"
    elsewhere = await identity.http.delete(f"/v1/clients/{client_id}", headers=auth_headers("hilltop",
                                                                                              roles=("tenant_admin",)))
    assert elsewhere.status_code == 404


async def test_a_client_for_customers_or_with_platform_admin_is_refused(identity: Identity) -> None:
    customer = await identity.http.post("/v1/clients", headers=RIVERSIDE_ADMIN,
                                        json={"name": "x", "roles": ["customer"]})
    platform = await identity.http.post("/v1/clients", headers=RIVERSIDE_ADMIN,
                                        json={"name": "x", "roles": ["platform_admin"]})
    assert customer.status_code == 422 and platform.status_code == 403


async def test_me_tells_any_caller_who_they_are(identity: Identity) -> None:
    customer = await identity.http.get("/v1/me", headers=auth_headers("riverside", roles=("customer",),
                                                                      account_id="acc-9", subject="c-9"))
    assert customer.status_code == 200
    assert customer.json() == {"subject": "c-9", "tenant": "riverside", "acting_tenant": "riverside",
                               "roles": ["customer"], "permissions": ["own_account"], "sites": None,
                               "duties": None, "account_id": "acc-9"}
    assert (await identity.http.get("/v1/me")).status_code == 401


async def test_a_put_must_say_every_field_so_nothing_widens_by_omission(identity: Identity) -> None:
    await identity.add_user("riverside", "alice", [Role.OPERATOR], sites=["b1"])
    partial = await identity.http.put("/v1/users/alice", headers=RIVERSIDE_ADMIN,
                                      json={"roles": ["operator"], "disabled": False})
    assert partial.status_code == 422 and "sites" in partial.text
    moved = await identity.http.put("/v1/users/alice", headers=RIVERSIDE_ADMIN,
                                    json=user_change("operator", sites=["b2"], duties=["heat"]))
    assert moved.status_code == 200 and moved.json()["sites"] == ["b2"] and moved.json()["duties"] == ["heat"]
    assert moved.json()["updated_by"] == "boss"
