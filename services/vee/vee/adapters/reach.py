"""Which meters an operator limited to sites and duties may change here."""

from __future__ import annotations

from amiflow_runtime.auth import Principal
from amiflow_runtime.http import out_of_reach
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import registry_db


async def meter_in_reach(session: AsyncSession, tenant: str, caller: Principal, meter_id: str) -> None:
    """403 when the meter is outside a limited caller's buildings or utilities (or unknown to them)."""
    if not caller.limited:
        return
    state = await registry_db.meter_state(session, tenant, meter_id)
    if state is None or not caller.covers(site=state.groups.building, utility=state.utility.value):
        raise out_of_reach(f"meter {meter_id}")
