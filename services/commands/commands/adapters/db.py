"""Commands' tables: the supply intent per account (the command log comes with the remote-control issue)."""

from __future__ import annotations

import json

from amiflow_runtime.db import UtcDateTime, inbox_table, outbox_table
from sqlalchemy import Column, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commands.core.supply import AccountSupply, SupplyIntent

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

account_supply = Table(
    "account_supply", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("intent", String(16), nullable=False),
    Column("since", UtcDateTime(), nullable=False),
    Column("meter_ids", Text, nullable=False),  # JSON list
)


async def load(session: AsyncSession, tenant_id: str, account_id: str) -> AccountSupply | None:
    row = (await session.execute(select(account_supply).where(
        account_supply.c.tenant_id == tenant_id, account_supply.c.account_id == account_id))).first()
    if row is None:
        return None
    return AccountSupply(row.account_id, SupplyIntent(row.intent), row.since, tuple(json.loads(row.meter_ids)))


async def save(session: AsyncSession, tenant_id: str, state: AccountSupply, existed: bool) -> None:
    values = {"intent": state.intent.value, "since": state.since, "meter_ids": json.dumps(list(state.meter_ids))}
    if existed:
        await session.execute(update(account_supply).where(
            account_supply.c.tenant_id == tenant_id, account_supply.c.account_id == state.account_id,
        ).values(**values))
    else:
        await session.execute(insert(account_supply).values(tenant_id=tenant_id, account_id=state.account_id,
                                                            **values))
