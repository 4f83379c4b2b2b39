"""VEE's handler and tables on both databases: baselines persist exactly, outputs are staged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.config import ServiceSettings
from amiflow_schemas import new_envelope
from amiflow_schemas.events.readings import ReadingReceived, ReadingValidated, ValidationStatus
from sqlalchemy.ext.asyncio import AsyncSession
from vee.adapters import db
from vee.app import reading_received_handler
from vee.main import build_runtime

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def received(meter: str, hour: int, value: str) -> Any:
    measured = datetime(2026, 11, 21, hour, tzinfo=UTC)
    payload = ReadingReceived.model_validate({
        "meter_id": meter, "utility": "gas", "measured_at": measured, "source": "dtu", "gateway_id": "DTU-1",
        "registers": [{"register": "total", "value": value, "unit": "m3"}],
    })
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id="t1", key=meter, occurred_at=measured,
                        recorded_at=measured, producer="ingest")


async def test_consumption_is_the_exact_register_delta_across_transactions(database_url: str) -> None:
    runtime = build_runtime(ServiceSettings(database_url=database_url), "test")
    await runtime.migrate()
    handle = reading_received_handler(FrozenClock(NOW))
    outputs: list[ReadingValidated] = []
    try:
        for hour, value in ((1, "1000.000000001"), (2, "1000.100000002"), (3, "999")):
            session: AsyncSession
            async with runtime.sessions() as session, session.begin():
                [event] = await handle(session, received("GM-1", hour, value))
                outputs.append(event.payload)
        async with runtime.sessions() as session:
            baseline = await db.baseline(session, "t1", "GM-1")
            history = await db.readings_of(session, "t1", "GM-1", None, None, 10)
    finally:
        await runtime.engine.dispose()
    assert [o.status for o in outputs] == [ValidationStatus.ACTUAL, ValidationStatus.ACTUAL, ValidationStatus.FAILED]
    assert outputs[1].consumption == Decimal("0.100000001")
    assert baseline is not None and baseline.value == Decimal("1000.100000002")
    assert baseline.measured_at == datetime(2026, 11, 21, 2, tzinfo=UTC)
    assert [h["status"] for h in history] == ["failed", "actual", "actual"]
    assert "backwards" in history[0]["failure"]
