"""What an operator limited to sites and duties may change here, and under whose name."""

from __future__ import annotations

from amiflow_runtime.auth import Principal
from fastapi import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import registry_db


def signed(caller: Principal, name: str) -> str:
    """`name` when the caller may record under it (an operator only their own); else 422 with the reason."""
    if caller.may_sign_as(name):
        return name
    raise HTTPException(422, detail={"problem": "not_your_name",
                                     "reason": f"an operator signs with their own name ({caller.subject}), "
                                               f"not {name!r}"})


async def meter_in_reach(session: AsyncSession, tenant: str, caller: Principal, meter_id: str) -> None:
    """403 when the meter is outside a limited caller's buildings or utilities (or unknown to them)."""
    if not caller.limited:
        return
    state = await registry_db.meter_state(session, tenant, meter_id)
    if state is None or not caller.covers(site=state.groups.building, utility=state.utility.value):
        raise HTTPException(403, detail={"problem": "out_of_reach",
                                         "reason": f"meter {meter_id} is outside your sites and duties"})
