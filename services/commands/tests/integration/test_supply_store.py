"""Commands' supply intents on both databases: the newest balance fact wins."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_schemas import new_envelope
from amiflow_schemas.examples import example_payloads
from commands.adapters import db
from commands.app import balance_handler
from commands.config import CommandsSettings
from commands.core.supply import SupplyIntent
from commands.main import build_runtime

pytestmark = pytest.mark.integration


def envelope(payload: Any) -> Any:
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id="t1", key=payload.account_id,
                        occurred_at=payload_time(payload), recorded_at=payload_time(payload), producer="billing")


def payload_time(payload: Any) -> Any:
    return getattr(payload, "depleted_at", None) or payload.restored_at


async def test_restore_after_cut_off_wins_and_a_late_older_cut_off_does_not_undo_it(database_url: str) -> None:
    depleted, restored = example_payloads()["BalanceDepleted"], example_payloads()["BalanceRestored"]
    restored = restored.model_copy(update={"account_id": depleted.account_id,
                                           "restored_at": depleted.depleted_at + timedelta(hours=2)})
    settings = CommandsSettings(database_url=database_url)
    runtime = build_runtime(settings, "test")
    runtime.clock = FrozenClock(restored.restored_at + timedelta(minutes=1))
    await runtime.migrate()
    try:
        for payload in (depleted, restored, depleted):  # the last one is a late redelivery of old news
            async with runtime.sessions() as session, session.begin():
                await balance_handler(runtime.clock, settings)(session, envelope(payload))
        async with runtime.sessions() as session:
            state = await db.load(session, "t1", depleted.account_id)
    finally:
        await runtime.engine.dispose()
    assert state is not None and state.intent is SupplyIntent.RESTORE
    assert state.since == restored.restored_at
