"""What ingest last heard from each meter, kept on both databases in the transactions that publish it:
readings and statuses in one batch, statuses alone (the DTU gateway's path), and late backlogs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.db import alembic_config
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.devices import BatteryLevel, BatteryStatus, DeviceAlarmFlag, DeviceStatusReported
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.primitives import ReadingSource, RelayState, Utility
from ingest.adapters import db
from ingest.adapters.reports_db import meter_last_reports
from ingest.app import Submission, record_events, submit_batch
from ingest.main import MIGRATIONS, build_runtime
from sqlalchemy import func, insert, select

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


@pytest.fixture
async def runtime(database_url: str) -> Any:
    runtime: ServiceRuntime = build_runtime(ServiceSettings(database_url=database_url), "test")
    runtime.clock = FrozenClock(T0 + timedelta(hours=5))
    await runtime.migrate()
    yield runtime
    await runtime.engine.dispose()


def reading(meter_id: str, at: datetime) -> ReadingReceived:
    return ReadingReceived(meter_id=meter_id, utility=Utility.ELECTRICITY, measured_at=at, source=ReadingSource.DTU,
                           gateway_id="DTU-1", registers=({"register": "total", "value": "1", "unit": "kWh"},))


def status(meter_id: str, at: datetime, relay: RelayState, *, voltage: str = "3.6") -> DeviceStatusReported:
    return DeviceStatusReported(meter_id=meter_id, utility=Utility.ELECTRICITY, reported_at=at, valve=None,
                                relay=relay, battery=BatteryStatus(level=BatteryLevel.OK, voltage_v=voltage,
                                                                   remaining_percent=80),
                                alarms=(DeviceAlarmFlag.COVER_OPEN,), status_word_hex=None, gateway_id="DTU-1",
                                signal_csq=21)


async def rows(runtime: Any) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        return {row.meter_id: row for row in await conn.execute(select(meter_last_reports))}


async def test_a_batch_keeps_each_meters_latest_reading_and_status(runtime: Any) -> None:
    await submit_batch(runtime, "t1", [
        Submission(0, reading("EM-1", T0 + timedelta(hours=2)), status("EM-1", T0 + timedelta(hours=2),
                                                                      RelayState.DISCONNECTED)),
        Submission(1, reading("EM-1", T0 + timedelta(hours=1)), status("EM-1", T0 + timedelta(hours=1),
                                                                      RelayState.CONNECTED)),
        Submission(2, reading("EM-2", T0)),
    ])

    found = await rows(runtime)
    assert set(found) == {"EM-1", "EM-2"}
    one = found["EM-1"]
    assert one.reading_measured_at == T0 + timedelta(hours=2) and one.reading_received_at == T0 + timedelta(hours=5)
    assert (one.relay, one.battery_level, one.alarms, one.signal_csq) == ("disconnected", "ok", "cover_open", 21)
    assert one.status_reported_at == T0 + timedelta(hours=2) and str(one.battery_voltage_v.normalize()) == "3.6"
    assert found["EM-2"].status_reported_at is None and found["EM-2"].relay is None


async def test_a_late_backlog_moves_nothing_back_and_a_status_alone_is_kept_too(runtime: Any) -> None:
    await submit_batch(runtime, "t1", [Submission(0, reading("EM-1", T0 + timedelta(hours=3)),
                                                  status("EM-1", T0 + timedelta(hours=3), RelayState.CONNECTED))])
    runtime.clock.advance(timedelta(minutes=10))
    await submit_batch(runtime, "t1", [Submission(0, reading("EM-1", T0 + timedelta(hours=1)),
                                                  status("EM-1", T0 + timedelta(hours=1), RelayState.DISCONNECTED))])
    await record_events(runtime, "t1", [status("EM-1", T0 + timedelta(hours=2), RelayState.CLOSE_ALLOWED)],
                        "EM-1", T0)  # an older status, alone: the gateway's path for a frame without registers
    await record_events(runtime, "t1", [status("EM-9", T0, RelayState.CLOSE_ALLOWED, voltage="3.1")], "EM-9", T0)

    found = await rows(runtime)
    one = found["EM-1"]
    assert one.reading_measured_at == T0 + timedelta(hours=3)  # the backlog's older reading did not win
    assert one.reading_received_at == T0 + timedelta(hours=5, minutes=10)  # but it was heard later
    assert (one.status_reported_at, one.relay) == (T0 + timedelta(hours=3), "connected")
    nine = found["EM-9"]
    assert (nine.relay, nine.reading_received_at, str(nine.battery_voltage_v.normalize())) == (
        "close_allowed", None, "3.1")
    async with runtime.engine.connect() as conn:  # the statuses were published as well as kept
        staged = (await conn.execute(select(func.count()).select_from(db.outbox))).scalar_one()
    assert staged == 2 + 2 + 1 + 1


async def test_the_migration_takes_each_meters_last_reading_from_those_already_accepted(database_url: str) -> None:
    runtime: ServiceRuntime = build_runtime(ServiceSettings(database_url=database_url), "test")
    config = alembic_config(MIGRATIONS, runtime.settings.resolved_database_url)
    await asyncio.to_thread(command.upgrade, config, "0005")
    async with runtime.engine.begin() as conn:
        await conn.execute(insert(db.accepted_readings), [
            {"tenant_id": tenant, "meter_id": "WM-1", "measured_at": T0 + timedelta(hours=h),
             "event_id": f"{tenant}{h}", "fingerprint": "f", "received_at": T0 + timedelta(hours=h, minutes=offset)}
            for tenant, h, offset in (("t1", 1, 30), ("t1", 2, 5), ("t2", 1, 0))])
    await asyncio.to_thread(command.upgrade, config, "head")

    async with runtime.engine.connect() as conn:
        found = {(row.tenant_id, row.meter_id): row for row in await conn.execute(select(meter_last_reports))}
    await runtime.engine.dispose()
    assert set(found) == {("t1", "WM-1"), ("t2", "WM-1")}
    assert found[("t1", "WM-1")].reading_received_at == T0 + timedelta(hours=2, minutes=5)
    assert found[("t1", "WM-1")].reading_measured_at == T0 + timedelta(hours=2)
    assert found[("t1", "WM-1")].status_reported_at is None  # past statuses were published, not kept
