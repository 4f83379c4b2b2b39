"""Every service API against bad requests: another tenant's objects, oversized bodies, malformed JSON.

One representative object per service is created in tenant A: a meter (ingest), an alarm (vee), an
account (billing), a command (commands), a contact (notify). A platform administrator acting for
tenant B does not see it (404, as if it did not exist); an operator of A who names tenant B in
X-Tenant-Id is refused outright (403); A's own administrator does see it. Each API refuses a body
over its 1 MiB limit unread (413) and malformed JSON with the reason (422), except where a route
allows more: the registry's spreadsheet import takes files up to 20 MiB (and ingest's readings a batch of
up to 16 MiB, which its own tests send). The regressions at the end are 5xx answers schemathesis found.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import auth_headers
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.primitives import Utility
from billing.config import BillingSettings
from billing.main import api as billing_api
from commands.adapters import store
from commands.config import CommandsSettings
from commands.core.capabilities import Device
from commands.main import api as commands_api
from fastapi import FastAPI
from ingest.config import IngestSettings
from ingest.main import api as ingest_api
from notify.config import NotifySettings
from notify.main import api as notify_api
from vee.adapters import alarms_db
from vee.config import VeeSettings
from vee.main import api as vee_api

pytestmark = pytest.mark.integration

A, B = "tenant-a", "tenant-b"
NOW = datetime.now(UTC).replace(microsecond=0)
MIB = 1024 * 1024


@dataclass
class Running:
    """One service's API on its own PostgreSQL database, and the path of tenant A's object in it."""

    app: FastAPI
    http: httpx.AsyncClient
    object_path: str = ""
    post_path: str = ""


async def _meter(running: Running) -> None:
    answer = await running.http.post("/v1/meters", headers=auth_headers(A), json={
        "meter_id": "WM-0001", "utility": "water", "profile": "cjt188-water-2004", "bus_address": "00000012345678",
        "unit": "m3", "dial_count": 8, "schedule": "hourly"})
    assert answer.status_code == 201, answer.text
    running.object_path, running.post_path = "/v1/meters/WM-0001", "/v1/meters"


async def _alarm(running: Running) -> None:
    raised = example_payloads()["AlarmRaised"]
    runtime = running.app.state.runtime
    async with runtime.sessions() as session, session.begin():
        await alarms_db.raised(session, A, raised)
    running.object_path, running.post_path = f"/v1/alarms/{raised.alarm_id}", "/v1/rules"


async def _account(running: Running) -> None:
    answer = await running.http.post("/v1/accounts", headers=auth_headers(A), json={
        "account_id": "ACC-1", "customer_id": "C-1", "customer_kind": "household"})
    assert answer.status_code == 201, answer.text
    running.object_path, running.post_path = "/v1/accounts/ACC-1", "/v1/accounts"


async def _command(running: Running) -> None:
    runtime = running.app.state.runtime
    device = Device(device_id="EM-1001", utility=Utility.ELECTRICITY, profile="dlt645-single-phase", active=True)
    async with runtime.sessions() as session, session.begin():
        await store.remember_device(session, A, 1, device, NOW)
    answer = await running.http.post("/v1/commands", headers=auth_headers(A), json={
        "device_id": "EM-1001", "kind": "relay_trip", "requested_by": "op-7", "note": "tampering reported"})
    assert answer.status_code == 201, answer.text
    running.object_path, running.post_path = f"/v1/commands/{answer.json()['command_id']}", "/v1/commands"


async def _contact(running: Running) -> None:
    answer = await running.http.put("/v1/contacts/C-1", headers=auth_headers(A), json={
        "account_id": "ACC-1", "email": "li.wei@example.cn", "updated_by": "ops-1"})
    assert answer.status_code == 200, answer.text
    running.object_path, running.post_path = "/v1/contacts/C-1", "/v1/webhook-subscriptions"


SERVICES: dict[str, tuple[Callable[..., FastAPI], Callable[..., Any], Callable[[Running], Awaitable[None]]]] = {
    "ingest": (ingest_api, IngestSettings, _meter),
    "vee": (vee_api, VeeSettings, _alarm),
    "billing": (billing_api, BillingSettings, _account),
    "commands": (commands_api, CommandsSettings, _command),
    "notify": (notify_api, NotifySettings, _contact),
}


@asynccontextmanager
async def started(name: str, postgres_database: Callable[[str], Awaitable[str]]) -> AsyncIterator[Running]:
    """The service's API on a new database, with tenant A's representative object."""
    build, settings, create = SERVICES[name]
    app = build(settings(database_url=await postgres_database(f"bad_{name}")))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        service = Running(app, http)
        await create(service)
        yield service
    await runtime.engine.dispose()


@pytest.fixture(params=sorted(SERVICES))
async def running(request: pytest.FixtureRequest,
                  postgres_database: Callable[[str], Awaitable[str]]) -> AsyncIterator[Running]:
    async with started(request.param, postgres_database) as service:
        yield service


async def test_another_tenants_object_is_not_found_by_an_admin_acting_for_that_tenant(running: Running) -> None:
    own = await running.http.get(running.object_path, headers=auth_headers(A))
    other = await running.http.get(running.object_path, headers=auth_headers(B))

    assert own.status_code == 200, own.text
    assert other.status_code == 404, other.text


async def test_an_operator_naming_another_tenant_is_refused_403(running: Running) -> None:
    operator = {**auth_headers(A, roles=("operator",)), "X-Tenant-Id": B}

    answer = await running.http.get(running.object_path, headers=operator)

    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["problem"] == "forbidden"


async def test_a_body_over_the_limit_is_refused_413_with_the_reason(running: Running) -> None:
    body = json.dumps({"padding": "x" * MIB}).encode()

    answer = await running.http.post(running.post_path, content=body,
                                     headers={**auth_headers(A), "content-type": "application/json"})

    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"] == {"problem": "too_large",
                                       "reason": f"the body is larger than the {MIB} bytes this route accepts"}


@pytest.mark.parametrize("body", [b'{"unclosed": ', b"{'single': 'quotes'}", b"[1, 2,]"])
async def test_malformed_json_is_refused_422_with_the_reason(running: Running, body: bytes) -> None:
    answer = await running.http.post(running.post_path, content=body,
                                     headers={**auth_headers(A), "content-type": "application/json"})

    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["type"] == "json_invalid" and error["location"].startswith("body")


@pytest.mark.parametrize("text", ["a\\u0000b", "\\udc80"])
async def test_text_postgresql_cannot_store_is_refused_422_not_failed_in_the_database(running: Running,
                                                                                      text: str) -> None:
    # Found by schemathesis: a NUL in a district's name was a 500, in a command's device id a 503 (audit).
    body = f'{{"name": "{text}", "note": "x"}}'.encode()

    answer = await running.http.post(running.post_path, content=body,
                                     headers={**auth_headers(A), "content-type": "application/json"})

    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0] == {"location": "body.name", "type": "unstorable_text",
                                          "reason": "NUL characters and lone surrogates are not accepted"}


async def test_an_account_id_longer_than_billing_stores_is_refused_422(
    postgres_database: Callable[[str], Awaitable[str]],
) -> None:
    # Found by schemathesis: ids are Identifiers of up to 128 characters, billing's columns hold 64 (was 500).
    async with started("billing", postgres_database) as billing:
        answer = await billing.http.post("/v1/accounts", headers=auth_headers(A), json={
            "account_id": "A" * 65, "customer_id": "C-1", "customer_kind": "household"})

    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["location"] == "body.account_id"


async def test_a_public_route_refuses_a_tenant_header_that_is_no_identifier(
    postgres_database: Callable[[str], Awaitable[str]],
) -> None:
    # Found by schemathesis: a provider callback (no token) with X-Tenant-Id "IZ\t]" failed its audit record (503).
    async with started("billing", postgres_database) as billing:
        answer = await billing.http.post("/v1/payments/callbacks/wechat_pay", content=b"{}",
                                         headers={"X-Tenant-Id": "IZ\t]", "content-type": "application/json"})

    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["location"] == "header.x-tenant-id"


async def test_a_manual_edit_is_checked_as_the_edit_log_records_it(
    postgres_database: Callable[[str], Awaitable[str]],
) -> None:
    # Found by schemathesis: an empty comment passed the request model and failed the edit log's (was 500).
    async with started("vee", postgres_database) as vee:
        answer = await vee.http.post("/v1/meters/WM-1/readings/2026-11-21T08:00:00Z/edits", headers=auth_headers(A),
                                     json={"value": "1.5", "edited_by": "op 7", "reason_code": "misread",
                                           "comment": ""})

    assert answer.status_code == 422, answer.text
    assert {e["location"] for e in answer.json()["errors"]} == {"body.edited_by", "body.comment"}


@pytest.fixture
async def ingest(postgres_database: Callable[[str], Awaitable[str]]) -> AsyncIterator[httpx.AsyncClient]:
    app = ingest_api(IngestSettings(database_url=await postgres_database("bad_import")))
    await app.state.runtime.migrate()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest",
                                 headers=auth_headers(A)) as http:
        yield http
    await app.state.runtime.engine.dispose()


async def test_the_registry_import_takes_a_file_larger_than_the_service_limit(ingest: httpx.AsyncClient) -> None:
    rows = "".join(f"WM-{n:06d},water,cjt188-water-2004,{n:014d},m3\n" for n in range(50_000))
    sheet = ("meter_id,utility,profile,bus_address,unit\n" + rows).encode()
    assert MIB < len(sheet) < 20 * MIB

    answer = await ingest.post("/v1/registry/import", params={"kind": "meters", "dry_run": "true"}, content=sheet,
                               headers={"content-type": "text/csv"})

    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["rows"] == 50_000 and answer.json()["problems"] == []
