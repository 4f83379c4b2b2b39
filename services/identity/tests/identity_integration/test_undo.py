"""Undoing role changes through the audit API on SQLite and PostgreSQL: a user's roles go back to what they
were, a user created by mistake is disabled (never deleted), and the password shown once is not in the trail."""

from __future__ import annotations

from typing import Any

import pytest
from amiflow_runtime.auth import Role
from amiflow_runtime.testing import auth_headers

from .conftest import Identity, user_change

pytestmark = pytest.mark.integration

ADMIN = auth_headers("riverside", roles=("tenant_admin",), subject="boss")


async def last_action(identity: Identity, action: str) -> dict[str, Any]:
    answer = await identity.http.get("/v1/audit", params={"action": action}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries[-1]


async def test_a_role_change_is_undone_to_the_roles_before(identity: Identity) -> None:
    await identity.add_user("riverside", "li", [Role.OPERATOR], sites=["b1"], duties=["water"])
    changed = await identity.http.put("/v1/users/li", headers=ADMIN, json=user_change("tenant_admin"))
    assert changed.status_code == 200, changed.text
    action = await last_action(identity, "PUT /v1/users/{username}")
    assert action["who"]["subject"] == "boss" and action["what"]["body"]["json"]["roles"] == ["tenant_admin"]

    undone = await identity.http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "wrong user"},
                                      headers=ADMIN)
    assert undone.status_code == 200, undone.text
    user = (await identity.http.get("/v1/users/li", headers=ADMIN)).json()
    assert (user["roles"], user["sites"], user["duties"], user["disabled"]) == (["operator"], ["b1"], ["water"],
                                                                                 False)


async def test_a_user_made_by_mistake_is_disabled_and_the_password_never_kept(identity: Identity) -> None:
    made = await identity.http.post("/v1/users", headers=ADMIN, json={"username": "typo", "roles": ["operator"]})
    assert made.status_code == 201
    action = await last_action(identity, "POST /v1/users")
    detail = await identity.http.get(f"/v1/audit/{action['id']}", headers=ADMIN)
    assert made.json()["password"] not in detail.text

    assert (await identity.http.post(f"/v1/audit/{action['id']}/undo", json={"reason": "typo"},
                                     headers=ADMIN)).status_code == 200
    assert (await identity.http.get("/v1/users/typo", headers=ADMIN)).json()["disabled"] is True
