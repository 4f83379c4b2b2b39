"""Billing's tables: the meter consumption projection (accounts and ledger come with the billing issue)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from amiflow_runtime.db import ExactDecimal, UtcDateTime, inbox_table, one_of, outbox_table
from amiflow_schemas.primitives import Unit, Utility
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.consumption import MeterConsumption

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

meter_consumption = Table(
    "meter_consumption", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(64), primary_key=True),
    Column("utility", String(16), nullable=False),
    Column("unit", String(8), nullable=True),
    Column("total", ExactDecimal(), nullable=False),
    Column("readings", Integer, nullable=False),
    Column("last_measured_at", UtcDateTime(), nullable=False),
)


_STORED_PLACES = Decimal("1e-9")  # ExactDecimal is NUMERIC(28, 9) on PostgreSQL


def as_stored(value: Decimal, dialect: str) -> Decimal:
    """The value an ExactDecimal column gives back once ``value`` was written to it: PostgreSQL rounds
    to 9 places (half away from zero) and answers with 9 places, SQLite keeps the text. A batch that
    carries state from one event to the next in memory carries this, so its events read exactly as
    those of events applied one by one (their decimals' digits included)."""
    if dialect == "postgresql":
        return value.quantize(_STORED_PLACES, rounding=ROUND_HALF_UP)
    return Decimal(format(value, "f"))


async def upsert(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, or update the row with the same primary key: one statement (both backends have
    INSERT ... ON CONFLICT DO UPDATE), executed for all rows at once."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
    keys = [column.name for column in table.primary_key.columns]
    statement = statement.on_conflict_do_update(index_elements=keys, set_={
        name: statement.excluded[name] for name in rows[0] if name not in keys})
    await session.execute(statement, list(rows))


def _consumption(row: Any) -> MeterConsumption:
    return MeterConsumption(row.meter_id, Utility(row.utility), Unit(row.unit) if row.unit else None,
                            row.total, row.readings, row.last_measured_at)


async def load_many(session: AsyncSession, tenant_id: str, meter_ids: Iterable[str]) -> dict[str, MeterConsumption]:
    """`load` of each meter in one query; meters without totals yet are left out."""
    wanted = sorted(set(meter_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(meter_consumption).where(
        meter_consumption.c.tenant_id == tenant_id, one_of(session, meter_consumption.c.meter_id, wanted)))
    return {row.meter_id: _consumption(row) for row in rows}


async def save_many(session: AsyncSession, states: Iterable[tuple[str, MeterConsumption]]) -> None:
    """`save` of (tenant, totals) pairs, new or not, in one statement."""
    await upsert(session, meter_consumption, [
        {"tenant_id": tenant_id, "meter_id": state.meter_id, "utility": state.utility.value,
         "unit": state.unit.value if state.unit else None, "total": state.total, "readings": state.readings,
         "last_measured_at": state.last_measured_at} for tenant_id, state in states])


async def load(session: AsyncSession, tenant_id: str, meter_id: str) -> MeterConsumption | None:
    row = (await session.execute(select(meter_consumption).where(
        meter_consumption.c.tenant_id == tenant_id, meter_consumption.c.meter_id == meter_id))).first()
    return None if row is None else _consumption(row)


async def save(session: AsyncSession, tenant_id: str, state: MeterConsumption, existed: bool) -> None:
    values = {"utility": state.utility.value, "unit": state.unit.value if state.unit else None,
              "total": state.total, "readings": state.readings, "last_measured_at": state.last_measured_at}
    if existed:
        await session.execute(update(meter_consumption).where(
            meter_consumption.c.tenant_id == tenant_id, meter_consumption.c.meter_id == state.meter_id,
        ).values(**values))
    else:
        await session.execute(insert(meter_consumption).values(tenant_id=tenant_id, meter_id=state.meter_id,
                                                               **values))
