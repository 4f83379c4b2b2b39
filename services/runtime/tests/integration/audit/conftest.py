"""A small service to test the audit trail with: "things" with a colour, kept in memory, behind the real runtime
(api_app, bearer tokens, the audit capture, the audit API) on a real database (SQLite and PostgreSQL).

Its compensators are the kind services declare: a created thing is deleted, a replaced thing put back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from amiflow_runtime.audit_undo import (
    ActionRequest,
    CannotUndo,
    Compensation,
    Undoable,
    UndoContext,
    UndoRegistry,
    segment,
)
from amiflow_runtime.auth import public
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.db import inbox_table, outbox_table
from amiflow_runtime.http import Tenant
from amiflow_runtime.process import api_app
from amiflow_runtime.service import ServiceRuntime
from amiflow_runtime.testing import auth_headers
from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel
from sqlalchemy import MetaData, text

MIGRATIONS = Path(__file__).parent / "migrations"
NOW = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
PROXY = "127.0.0.1"  # the in-process client's address, configured as a trusted proxy
_metadata = MetaData()
INBOX, OUTBOX = inbox_table(_metadata), outbox_table(_metadata)


class ThingBody(BaseModel):
    colour: str
    note: str | None = None
    password: str | None = None  # a secret the trail must never keep


def things_router(things: dict[tuple[str, str], dict[str, Any]], hang: asyncio.Event) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["things"])

    @router.post("/things", status_code=201)
    async def create(body: ThingBody, tenant: Tenant) -> dict[str, Any]:
        thing_id = f"T-{uuid.uuid4().hex[:8]}"
        things[(tenant, thing_id)] = {"thing_id": thing_id, "colour": body.colour, "note": body.note}
        return things[(tenant, thing_id)]

    @router.get("/things/{thing_id}")
    async def read(thing_id: str, tenant: Tenant) -> dict[str, Any]:
        if (tenant, thing_id) not in things:
            raise HTTPException(404, detail={"problem": "unknown_thing", "reason": f"no thing {thing_id}"})
        return things[(tenant, thing_id)]

    @router.put("/things/{thing_id}")
    async def replace(thing_id: str, body: ThingBody, tenant: Tenant) -> dict[str, Any]:
        things[(tenant, thing_id)] = {"thing_id": thing_id, "colour": body.colour, "note": body.note}
        return things[(tenant, thing_id)]

    @router.delete("/things/{thing_id}", status_code=204)
    async def remove(thing_id: str, tenant: Tenant) -> Response:
        if things.pop((tenant, thing_id), None) is None:
            raise HTTPException(404, detail={"problem": "unknown_thing", "reason": f"no thing {thing_id}"})
        return Response(status_code=204)

    @router.post("/things/{thing_id}/hang")
    async def hang_forever(thing_id: str) -> None:
        await hang.wait()  # until the test kills the request, as a dying process would

    @router.post("/things/{thing_id}/lock")
    async def lock(thing_id: str) -> None:
        raise HTTPException(403, detail={"problem": "out_of_reach", "reason": f"{thing_id} is not in your sites"})

    @router.post("/explode")
    async def explode() -> None:
        raise RuntimeError("the handler failed")

    @router.post("/callbacks/{provider}", openapi_extra=public("the provider signs the body"), status_code=201)
    async def callback(provider: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"payment_id": body.get("payment_id")}

    return router


def delete_created(context: UndoContext) -> Compensation | CannotUndo:
    thing_id = context.answer_id("thing_id")
    return CannotUndo("nothing was created") if thing_id is None else Compensation(
        "DELETE", f"/v1/things/{segment(thing_id)}")


def put_back(context: UndoContext) -> Compensation | CannotUndo:
    path = f"/v1/things/{segment(context.request.path_params['thing_id'])}"
    if context.before_missing:
        return Compensation("DELETE", path)
    previous = context.before_json
    if previous is None:
        return CannotUndo("the thing before was not kept")
    return Compensation("PUT", path, {"colour": previous["colour"], "note": previous["note"]})


def thing_before(request: ActionRequest) -> str:
    return f"/v1/things/{segment(request.path_params['thing_id'])}"


UNDO = UndoRegistry(
    undoable={"POST /v1/things": Undoable(delete_created),
              "PUT /v1/things/{thing_id}": Undoable(put_back, thing_before)},
    final={"DELETE /v1/things/{thing_id}": "a deleted thing is gone"},
)


@dataclass
class ThingsService:
    """The things service on one database, called in-process as a client at PROXY would."""

    http: httpx.AsyncClient
    runtime: ServiceRuntime
    app: Any
    things: dict[tuple[str, str], dict[str, Any]]
    hang: asyncio.Event
    database_url: str
    tenant: str = "riverside"
    calls: list[Any] = field(default_factory=list)

    def as_(self, subject: str = "op-7", roles: tuple[str, ...] = ("operator",), tenant: str | None = None,
            **headers: str) -> dict[str, str]:
        return {**auth_headers(tenant or self.tenant, roles=roles, subject=subject), **headers}

    def auditor(self, tenant: str | None = None) -> dict[str, str]:
        return self.as_("aud-1", ("auditor",), tenant)

    async def entries(self, tenant: str | None = None, **query: Any) -> list[dict[str, Any]]:
        answer = await self.http.get("/v1/audit", params=query, headers=self.auditor(tenant))
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        async with self.runtime.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []


@pytest.fixture
async def things_service(database_url: str) -> AsyncIterator[ThingsService]:
    things: dict[tuple[str, str], dict[str, Any]] = {}
    hang = asyncio.Event()
    settings = ServiceSettings(database_url=database_url, trusted_proxies=PROXY)
    runtime = ServiceRuntime(settings=settings, role="api", migrations_dir=MIGRATIONS, inbox=INBOX, outbox=OUTBOX,
                             dead_letter_topic="amiflow.dlq.ingest", clock=FrozenClock(NOW))
    await runtime.migrate()
    app = api_app(runtime, title="things", description="things for the audit tests",
                  routers=[things_router(things, hang)], undo=UNDO)
    transport = httpx.ASGITransport(app=app, client=(PROXY, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://things") as http:
        yield ThingsService(http, runtime, app, things, hang, database_url)
    hang.set()
    await runtime.engine.dispose()
