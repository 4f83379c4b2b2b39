"""Notify's trigger log on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.config import ServiceSettings
from amiflow_schemas import new_envelope
from amiflow_schemas.examples import example_payloads
from notify.adapters import db
from notify.app import trigger_handler
from notify.main import build_runtime

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def envelope(event_type: str, tenant: str) -> Any:
    payload = example_payloads()[event_type]
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key="k", occurred_at=NOW,
                        recorded_at=NOW, producer="test")


async def test_low_balance_and_failed_command_are_recorded_for_their_audiences(database_url: str) -> None:
    runtime = build_runtime(ServiceSettings(database_url=database_url), "test")
    await runtime.migrate()
    handle = trigger_handler(FrozenClock(NOW))
    try:
        for event_type, tenant in (("BalanceLow", "t1"), ("CommandFailed", "t1"), ("ReadingValidated", "t1"),
                                   ("BalanceLow", "t2")):
            async with runtime.sessions() as session, session.begin():
                await handle(session, envelope(event_type, tenant))
        async with runtime.sessions() as session:
            rows = await db.recent(session, "t1", None, 10)
    finally:
        await runtime.engine.dispose()
    assert sorted((r["event_type"], r["audience"]) for r in rows) == [
        ("BalanceLow", "customer"), ("CommandFailed", "operator")]
