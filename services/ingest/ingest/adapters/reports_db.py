"""What ingest last heard from each meter: its latest accepted reading and its latest device status.

One row per meter, written in the transaction that accepts the reading or stages the status, so
the console's "online" (ingest.core.fleet_state) and a meter's valve, relay and battery agree with
the events published. A store-and-forward backlog delivers old frames late: every column keeps the
latest value by its own time, never the last one written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from amiflow_runtime.db import ExactDecimal, UtcDateTime
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.events.readings import ReadingReceived
from sqlalchemy import Column, ColumnElement, Integer, String, Table, case, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters.db import metadata

meter_last_reports = Table(
    "meter_last_reports", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("meter_id", String(128), primary_key=True),
    Column("reading_received_at", UtcDateTime()),  # when ingest accepted its latest reading
    Column("reading_measured_at", UtcDateTime()),  # the latest instant a reading was measured at
    Column("status_reported_at", UtcDateTime()),  # the device clock (else receive time) of the latest status
    Column("valve", String(16)),
    Column("relay", String(16)),
    Column("battery_level", String(8)),
    Column("battery_voltage_v", ExactDecimal()),
    Column("battery_remaining_percent", Integer),
    Column("alarms", String(256)),  # comma-separated DeviceAlarmFlag values; '' for none
    Column("clock_drift_s", Integer),
    Column("signal_csq", Integer),
)
_R = meter_last_reports.c
READING_COLUMNS = ("reading_received_at", "reading_measured_at")
STATUS_COLUMNS = ("status_reported_at", "valve", "relay", "battery_level", "battery_voltage_v",
                  "battery_remaining_percent", "alarms", "clock_drift_s", "signal_csq")


def _upsert_statement(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(meter_last_reports)


def _later(new: ColumnElement[Any], stored: ColumnElement[Any]) -> ColumnElement[Any]:
    return or_(stored.is_(None), new > stored)


async def note_readings(session: AsyncSession, tenant_id: str, readings: Iterable[ReadingReceived],
                        received_at: datetime) -> None:
    """Record accepted readings: one row per meter, its latest measured instant and ``received_at``."""
    latest: dict[str, datetime] = {}
    for reading in readings:
        if reading.meter_id not in latest or reading.measured_at > latest[reading.meter_id]:
            latest[reading.meter_id] = reading.measured_at
    if not latest:
        return
    statement = _upsert_statement(session)
    new = statement.excluded
    statement = statement.on_conflict_do_update(index_elements=["tenant_id", "meter_id"], set_={
        name: case((_later(new[name], _R[name]), new[name]), else_=_R[name]) for name in READING_COLUMNS})
    # Sorted: two batches upserting the same meters lock their rows in the same order (no deadlock).
    await session.execute(statement, [
        {"tenant_id": tenant_id, "meter_id": meter_id, "reading_received_at": received_at,
         "reading_measured_at": measured_at} for meter_id, measured_at in sorted(latest.items())])


async def note_statuses(session: AsyncSession, tenant_id: str, statuses: Iterable[DeviceStatusReported]) -> None:
    """Record device statuses: a meter's row takes a status only if it is not older than the one it has."""
    latest: dict[str, DeviceStatusReported] = {}
    for status in statuses:
        held = latest.get(status.meter_id)
        if held is None or status.reported_at >= held.reported_at:
            latest[status.meter_id] = status
    if not latest:
        return
    statement = _upsert_statement(session)
    new = statement.excluded
    newer = or_(_R.status_reported_at.is_(None), new.status_reported_at >= _R.status_reported_at)
    statement = statement.on_conflict_do_update(index_elements=["tenant_id", "meter_id"], set_={
        name: case((newer, new[name]), else_=_R[name]) for name in STATUS_COLUMNS})
    await session.execute(statement, [_status_row(tenant_id, latest[meter_id]) for meter_id in sorted(latest)])


def _status_row(tenant_id: str, status: DeviceStatusReported) -> dict[str, Any]:
    battery = status.battery
    return {
        "tenant_id": tenant_id, "meter_id": status.meter_id, "status_reported_at": status.reported_at,
        "valve": status.valve.value if status.valve else None, "relay": status.relay.value if status.relay else None,
        "battery_level": battery.level.value if battery else None,
        "battery_voltage_v": battery.voltage_v if battery else None,
        "battery_remaining_percent": battery.remaining_percent if battery else None,
        "alarms": ",".join(alarm.value for alarm in status.alarms), "clock_drift_s": status.clock_drift_s,
        "signal_csq": status.signal_csq,
    }
