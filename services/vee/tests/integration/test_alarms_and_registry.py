"""VEE's alarm read model and acknowledgement API, and its copy of the registry, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import decode_event, new_envelope
from amiflow_schemas.examples import example_payloads
from sqlalchemy import select
from vee.adapters import alarms_db, db, registry_db
from vee.config import VeeSettings
from vee.main import api
from vee.registry_app import registry_handler

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    runtime.clock = FrozenClock(NOW)
    await runtime.migrate()
    async with asgi_client(app, "http://vee") as http:
        yield http, runtime
    await runtime.engine.dispose()


async def test_an_alarm_is_listed_acknowledged_once_and_the_acknowledgement_published(client: Any) -> None:
    http, runtime = client
    raised = example_payloads()["AlarmRaised"]
    async with runtime.sessions() as session, session.begin():
        await alarms_db.raised(session, "market", raised)
    listed = (await http.get("/v1/alarms", params={"state": "open"}, headers={"X-Tenant-Id": "market"})).json()
    assert [a["alarm_id"] for a in listed] == [str(raised.alarm_id)]
    assert (await http.get("/v1/alarms", headers={"X-Tenant-Id": "other"})).json() == []

    path = f"/v1/alarms/{raised.alarm_id}/ack"
    first = await http.post(path, json={"acknowledged_by": "op-7", "note": "crew sent"},
                            headers={"X-Tenant-Id": "market"})
    again = await http.post(path, json={"acknowledged_by": "op-8"}, headers={"X-Tenant-Id": "market"})
    assert first.status_code == 200 and first.json()["acknowledged_by"] == "op-7"
    assert again.json()["acknowledged_by"] == "op-7"  # the first acknowledgement stands
    assert (await http.post(path, json={"acknowledged_by": "x"}, headers={"X-Tenant-Id": "other"})).status_code == 404
    async with runtime.engine.connect() as conn:
        staged = [decode_event(r.message_value) for r in (await conn.execute(
            select(db.outbox).where(db.outbox.c.topic != "amiflow.audit"))).all()]
    assert [e.event_type for e in staged] == ["AlarmAcknowledged"]
    assert staged[0].payload.acknowledged_at == NOW and staged[0].key == raised.subject_id


async def test_the_registry_copy_keeps_the_newest_revision_whatever_the_arrival_order(client: Any) -> None:
    _, runtime = client
    defined = example_payloads()["MeterDefined"]
    newer = defined.model_copy(update={"revision": defined.revision + 1,
                                       "meter": defined.meter.model_copy(update={"dial_count": 6})})
    handle = registry_handler(FrozenClock(NOW), lambda _tenant: "Asia/Shanghai")
    for payload in (newer, defined):  # the older revision arrives last
        envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id="market", key=payload.device_key,
                                occurred_at=NOW - timedelta(hours=1), recorded_at=NOW, producer="ingest")
        async with runtime.sessions() as session, session.begin():
            await handle(session, envelope)
    async with runtime.sessions() as session:
        state = await registry_db.meter_state(session, "market", defined.meter.meter_id)
    assert state is not None and state.dial_count == 6
