"""Commands' handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amiflow_schemas import Envelope
from amiflow_schemas.events.billing import BalanceDepleted, BalanceRestored
from sqlalchemy.ext.asyncio import AsyncSession

from commands.adapters import db
from commands.core.supply import evolve


async def on_balance_event(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """Record the account's latest supply intent from BalanceDepleted / BalanceRestored."""
    payload = envelope.payload
    if not isinstance(payload, BalanceDepleted | BalanceRestored):
        return []  # BalanceLow is for notify; commands acts only on depletion and restore
    before = await db.load(session, envelope.tenant_id, payload.account_id)
    after = evolve(before, payload)
    if after != before:
        await db.save(session, envelope.tenant_id, after, before is not None)
    return []
