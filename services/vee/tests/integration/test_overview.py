"""The console's morning overview through the HTTP app, on both databases: a local day in Asia/Shanghai
(midnight is 16:00 UTC) counts the slots measured in it by status, the meters that reported in it, and the
alarms open now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.alarms import (
    AlarmAcknowledged,
    AlarmCleared,
    AlarmRaised,
    AlarmSeverity,
    AlarmType,
    ClearReason,
)
from amiflow_schemas.examples import example_payloads
from vee.adapters import alarms_db

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


NOW = local(21, 4, 30)


async def _raise(api: Any, meter_id: str, alarm_type: AlarmType, severity: AlarmSeverity,
                 detected_at: datetime) -> AlarmRaised:
    raised: AlarmRaised = example_payloads()["AlarmRaised"].model_copy(update={
        "alarm_id": uuid4(), "alarm_type": alarm_type, "severity": severity, "subject_id": meter_id,
        "detected_at": detected_at})
    async with api.runtime.sessions() as session, session.begin():
        await alarms_db.raised(session, api.tenant, raised)
    return raised


async def test_a_local_day_counts_its_own_slots_on_either_side_of_midnight(vee_api: Any) -> None:
    api = vee_api
    for meter in ("WM-H1", "WM-H2"):
        await api.define_meter(meter, hourly=True)
    # H1 reads every hour across local midnight but for 02:00 (estimated once 03:00 closes the gap); H2 only
    # on the evening before. GHOST is not in the registry: its reading is kept as failed.
    for at, value in ((local(20, 21), "100.0"), (local(20, 22), "100.5"), (local(20, 23), "101.0"),
                      (local(21, 0), "101.5"), (local(21, 1), "102.0"), (local(21, 3), "103.0")):
        await api.read("WM-H1", at, value)
    for at, value in ((local(20, 22), "50.0"), (local(20, 23), "50.2")):
        await api.read("WM-H2", at, value)
    await api.read("WM-GHOST", local(21, 2, 15), "7.0")
    edited = await api.http.post(f"/v1/meters/WM-H1/readings/{local(21, 1).isoformat()}/edits",
                                 json={"value": "102.1", "edited_by": "op-7", "reason_code": "misread"})
    assert edited.status_code == 201, edited.text

    today = (await api.http.get("/v1/overview")).json()  # today in Shanghai: 21 November
    evening = (await api.http.get("/v1/overview", params={"day": "2026-11-20"})).json()

    assert today["day"] == "2026-11-21" and today["time_zone"] == "Asia/Shanghai"
    assert today["day_start"] == "2026-11-20T16:00:00Z" and today["day_end"] == "2026-11-21T16:00:00Z"
    assert today["readings"] == {"total": 5, "actual": 2, "estimated": 1, "edited": 1, "failed": 1, "missing": 0}
    assert today["meters_reporting"] == 1  # H1 (its edited slot was read too); GHOST's read failed
    assert evening["readings"] == {"total": 5, "actual": 5, "estimated": 0, "edited": 0, "failed": 0, "missing": 0}
    assert evening["meters_reporting"] == 2
    assert datetime.fromisoformat(today["as_of"]) == NOW


async def test_the_overview_counts_the_alarms_open_now_and_those_raised_during_the_day(vee_api: Any) -> None:
    api = vee_api
    await _raise(api, "WM-1", AlarmType.CONTINUOUS_FLOW, AlarmSeverity.WARNING, local(21, 2))
    burst = await _raise(api, "WM-1", AlarmType.BURST, AlarmSeverity.CRITICAL, local(20, 22))
    silent = await _raise(api, "WM-2", AlarmType.NO_COMMUNICATION, AlarmSeverity.WARNING, local(21, 1))
    await _raise(api, "WM-2", AlarmType.BATTERY_LOW, AlarmSeverity.INFO, local(19, 9))
    async with api.runtime.sessions() as session, session.begin():
        await alarms_db.acknowledged(session, api.tenant, _acknowledgement(burst))
        await alarms_db.cleared(session, api.tenant, AlarmCleared(
            alarm_id=silent.alarm_id, alarm_type=silent.alarm_type, subject=silent.subject,
            subject_id=silent.subject_id, cleared_at=local(21, 3), reason=ClearReason.CONDITION_ENDED,
            cleared_by=None))

    today = (await api.http.get("/v1/overview")).json()
    evening = (await api.http.get("/v1/overview", params={"day": "2026-11-20"})).json()

    assert today["alarms"] == {"open": 3, "unacknowledged": 2, "raised": 2,
                               "by_severity": {"info": 1, "warning": 1, "critical": 1},
                               "by_kind": {"battery_low": 1, "burst": 1, "continuous_flow": 1}}
    assert evening["alarms"]["raised"] == 1 and evening["alarms"]["open"] == 3  # open: now, whatever the day
    other = (await api.http.get("/v1/overview", headers={"X-Tenant-Id": "another"})).json()
    assert other["alarms"]["open"] == 0 and other["readings"]["total"] == 0


async def test_an_overview_day_that_is_not_a_date_or_beyond_the_calendar_is_refused(vee_api: Any) -> None:
    assert (await vee_api.http.get("/v1/overview", params={"day": "21/11/2026"})).status_code == 422
    far = await vee_api.http.get("/v1/overview", params={"day": "0001-01-01"})
    assert far.status_code == 422 and far.json()["detail"]["problem"] == "day_out_of_range"


def _acknowledgement(alarm: AlarmRaised) -> Any:
    return AlarmAcknowledged(alarm_id=alarm.alarm_id, alarm_type=alarm.alarm_type, subject=alarm.subject,
                             subject_id=alarm.subject_id, acknowledged_at=local(21, 4), acknowledged_by="op-7",
                             note=None)

