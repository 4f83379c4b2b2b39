"""Undoing contact changes through the audit API on SQLite and PostgreSQL: a changed contact is put back, a new
one deleted, a new webhook subscription removed; the secret it answered is never in the trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from notify.config import NotifySettings
from notify.main import api

pytestmark = pytest.mark.integration

TENANT = "riverside"
OPERATOR = auth_headers(TENANT, roles=("operator",), subject="op-7")
ADMIN = auth_headers(TENANT, roles=("tenant_admin",), subject="boss")
AUDITOR = auth_headers(TENANT, roles=("auditor",), subject="aud-1")


@pytest.fixture
async def notify(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = api(NotifySettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(datetime(2026, 7, 15, 2, tzinfo=UTC))
    await runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as http:
        yield http
    await runtime.engine.dispose()


async def last_action(http: httpx.AsyncClient, action: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = (await http.get("/v1/audit", params={"action": action},
                                                    headers=AUDITOR)).json()["entries"]
    return entries[-1]


def contact(email: str) -> dict[str, Any]:
    return {"account_id": "ACC-1", "email": email, "channels": ["email"], "updated_by": "op-7"}


async def test_a_changed_contact_is_put_back_and_a_new_one_deleted(notify: httpx.AsyncClient) -> None:
    assert (await notify.put("/v1/contacts/C-1", json=contact("li.wei@example.cn"), headers=OPERATOR)).is_success
    created = await last_action(notify, "PUT /v1/contacts/{contact_id}")
    assert (await notify.put("/v1/contacts/C-1", json=contact("wrong@example.cn"), headers=OPERATOR)).is_success
    changed = await last_action(notify, "PUT /v1/contacts/{contact_id}")

    assert (await notify.post(f"/v1/audit/{changed['id']}/undo", json={"reason": "typo"},
                              headers=OPERATOR)).status_code == 200
    shown = (await notify.get("/v1/contacts/C-1", headers=OPERATOR)).json()
    assert shown["contact"]["email"] == "li.wei@example.cn" and shown["updated_by"] == "op-7"

    assert (await notify.post(f"/v1/audit/{created['id']}/undo", json={"reason": "wrong customer"},
                              headers=OPERATOR)).status_code == 200
    assert (await notify.get("/v1/contacts/C-1", headers=OPERATOR)).status_code == 404


async def test_a_new_subscription_is_removed_and_its_secret_was_never_kept(notify: httpx.AsyncClient) -> None:
    made = await notify.post("/v1/webhook-subscriptions", headers=ADMIN, json={
        "subscription_id": "erp", "url": "https://erp.example.cn/hook", "topics": ["payment_receipt"],
        "created_by": "boss"})
    assert made.status_code == 201
    secret = made.json()["secret"]
    action = await last_action(notify, "POST /v1/webhook-subscriptions")
    detail = (await notify.get(f"/v1/audit/{action['id']}", headers=AUDITOR)).text
    assert secret not in detail and action["outcome"]["ids"] == {"subscription_id": ["erp"]}

    assert (await notify.post(f"/v1/audit/{action['id']}/undo", json={"reason": "not yet"},
                              headers=ADMIN)).status_code == 200
    assert (await notify.get("/v1/webhook-subscriptions", headers=ADMIN)).json() == []
