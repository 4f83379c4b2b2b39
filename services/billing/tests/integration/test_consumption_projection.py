"""Billing's projection on both databases: exact totals, tenants apart, unit mix refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.pipeline import Rejected
from amiflow_schemas import new_envelope
from amiflow_schemas.events.readings import ReadingValidated
from billing.adapters import db
from billing.app import reading_handler
from billing.main import build_runtime

pytestmark = pytest.mark.integration


def validated(tenant: str, hour: int, consumption: str, unit: str = "GJ") -> Any:
    measured = datetime(2026, 11, 21, hour, tzinfo=UTC)
    payload = ReadingValidated.model_validate({
        "meter_id": "HM-1", "utility": "heat", "measured_at": measured,
        "registers": [{"register": "total", "value": "50", "unit": unit}], "consumption": consumption,
        "consumption_unit": unit, "previous_measured_at": None, "status": "actual", "estimation_method": None,
        "source_event_id": uuid.uuid4(),
    })
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key="HM-1", occurred_at=measured,
                        recorded_at=measured, producer="vee")


async def test_totals_are_exact_per_tenant_and_a_unit_mix_is_rejected(database_url: str) -> None:
    runtime = build_runtime(ServiceSettings(database_url=database_url), "test")
    await runtime.migrate()
    try:
        for tenant, hour, amount in (("a", 1, "0.1"), ("a", 2, "0.2"), ("b", 1, "7")):
            async with runtime.sessions() as session, session.begin():
                # Without a previous reading there is no span to rate: counted here, nothing posted.
                assert await reading_handler(runtime.clock)(session, validated(tenant, hour, amount)) == []
        with pytest.raises(Rejected, match="GJ"):
            async with runtime.sessions() as session, session.begin():
                await reading_handler(runtime.clock)(session, validated("a", 3, "1", unit="kWh"))
        async with runtime.sessions() as session:
            a, b = await db.load(session, "a", "HM-1"), await db.load(session, "b", "HM-1")
    finally:
        await runtime.engine.dispose()
    assert a is not None and a.total == Decimal("0.3") and a.readings == 2
    assert b is not None and b.total == Decimal("7")
