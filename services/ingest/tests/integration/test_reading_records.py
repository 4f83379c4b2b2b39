"""Ingest's idempotency record and outbox on both databases the service supports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas import decode_event
from amiflow_schemas.events.readings import ReadingReceived
from ingest.adapters import db
from ingest.app import submit_reading
from ingest.core.readings import Outcome
from ingest.main import build_runtime
from sqlalchemy import select

pytestmark = pytest.mark.integration

SKEW = timedelta(minutes=5)


def reading(value: str, at: str = "2026-11-21T08:00:00+08:00") -> ReadingReceived:
    document: dict[str, Any] = {
        "meter_id": "WM-7", "utility": "water", "measured_at": at, "source": "http", "gateway_id": None,
        "registers": [{"register": "total", "value": value, "unit": "m3"}],
    }
    return ReadingReceived.model_validate(document)


@pytest.fixture
async def runtime(database_url: str) -> Any:
    runtime: ServiceRuntime = build_runtime(ServiceSettings(database_url=database_url), "test")
    await runtime.migrate()
    yield runtime
    await runtime.engine.dispose()


async def test_a_reading_is_recorded_once_and_staged_for_kafka_in_the_same_transaction(runtime: Any) -> None:
    first = await submit_reading(runtime, "t1", reading("12.340"), SKEW)
    again = await submit_reading(runtime, "t1", reading("12.34"), SKEW)
    conflict = await submit_reading(runtime, "t1", reading("12.35"), SKEW)
    other_tenant = await submit_reading(runtime, "t2", reading("99"), SKEW)

    assert first.outcome is Outcome.ACCEPTED
    assert (again.outcome, again.event_id) == (Outcome.DUPLICATE, first.event_id)
    assert (conflict.outcome, conflict.event_id) == (Outcome.CONFLICT, first.event_id)
    assert other_tenant.outcome is Outcome.ACCEPTED
    async with runtime.engine.connect() as conn:
        staged = (await conn.execute(select(db.outbox).order_by(db.outbox.c.id))).all()
        recorded = (await conn.execute(select(db.accepted_readings))).all()
    assert len(staged) == 2 and len(recorded) == 2
    event = decode_event(staged[0].message_value)
    assert event.event_id == first.event_id and event.tenant_id == "t1"
    assert staged[0].topic == "amiflow.ingest.readings" and staged[0].message_key == b"WM-7"
    assert {r.measured_at for r in recorded} == {datetime(2026, 11, 21, 0, 0, tzinfo=UTC)}


async def test_the_same_instant_in_another_offset_is_the_same_reading(runtime: Any) -> None:
    first = await submit_reading(runtime, "t1", reading("5", "2026-11-21T08:00:00+08:00"), SKEW)
    same = await submit_reading(runtime, "t1", reading("5", "2026-11-21T00:00:00+00:00"), SKEW)
    assert same.outcome is Outcome.DUPLICATE and same.event_id == first.event_id


async def test_concurrent_submissions_of_one_reading_accept_exactly_one(runtime: Any) -> None:
    receipts = await asyncio.gather(*[submit_reading(runtime, "t1", reading("8"), SKEW) for _ in range(5)])
    assert sorted(r.outcome for r in receipts).count(Outcome.ACCEPTED) == 1
    assert len({r.event_id for r in receipts}) == 1


async def test_a_reading_of_a_meter_with_the_longest_id_an_event_allows_is_recorded(runtime: Any) -> None:
    # ReadingReceived allows 128 characters; the record once held 64 and PostgreSQL refused the whole batch.
    long_id = "M" * 128
    long = ReadingReceived.model_validate({**reading("1").model_dump(mode="json"), "meter_id": long_id})
    first = await submit_reading(runtime, "t1", long, SKEW)
    again = await submit_reading(runtime, "t1", long, SKEW)
    assert first.outcome is Outcome.ACCEPTED
    assert (again.outcome, again.event_id) == (Outcome.DUPLICATE, first.event_id)
