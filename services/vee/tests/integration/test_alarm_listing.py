"""The alarms page through the HTTP app, on both databases: filters by state, severity, type, meter and
time; newest-first pages that follow each other by the last alarm's id; acknowledgement with a note."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from amiflow_runtime.testing import auth_headers
from amiflow_schemas.events.alarms import (
    AlarmCleared,
    AlarmRaised,
    AlarmSeverity,
    AlarmSubject,
    AlarmType,
    ClearReason,
)
from amiflow_schemas.examples import example_payloads
from vee.adapters import alarms_db

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 4, tzinfo=UTC)
WARNING, CRITICAL, INFO = AlarmSeverity.WARNING, AlarmSeverity.CRITICAL, AlarmSeverity.INFO
METER, DISTRICT = AlarmSubject.METER, AlarmSubject.DISTRICT
# (name, type, severity, subject, subject id, hours before NOW); leak-b and burst share their instant.
ALARMS = [
    ("leak-a", AlarmType.CONTINUOUS_FLOW, WARNING, METER, "WM-1", 1),
    ("burst", AlarmType.BURST, CRITICAL, METER, "WM-1", 2),
    ("leak-b", AlarmType.CONTINUOUS_FLOW, WARNING, METER, "WM-2", 2),
    ("imbalance", AlarmType.DISTRICT_IMBALANCE, WARNING, DISTRICT, "DMA-07", 3),
    ("battery", AlarmType.BATTERY_LOW, INFO, METER, "WM-2", 5),
    ("silent", AlarmType.NO_COMMUNICATION, WARNING, METER, "WM-3", 8),
    ("tamper", AlarmType.TAMPER, CRITICAL, METER, "WM-1", 30),
]


@pytest.fixture
async def alarms(vee_api: Any) -> dict[str, UUID]:
    """The alarms above, raised; silent cleared since; burst acknowledged."""
    ids = {}
    async with vee_api.runtime.sessions() as session, session.begin():
        for name, kind, severity, subject, subject_id, hours in ALARMS:
            raised: AlarmRaised = example_payloads()["AlarmRaised"].model_copy(update={
                "alarm_id": uuid4(), "alarm_type": kind, "severity": severity, "subject": subject,
                "subject_id": subject_id, "detected_at": NOW - timedelta(hours=hours)})
            await alarms_db.raised(session, vee_api.tenant, raised)
            ids[name] = raised.alarm_id
        await alarms_db.cleared(session, vee_api.tenant, AlarmCleared(
            alarm_id=ids["silent"], alarm_type=AlarmType.NO_COMMUNICATION, subject=METER, subject_id="WM-3",
            cleared_at=NOW, reason=ClearReason.CONDITION_ENDED, cleared_by=None))
    acked = await vee_api.http.post(f"/v1/alarms/{ids['burst']}/ack", json={"note": "crew on the way"})
    assert acked.status_code == 200, acked.text
    return ids


async def _names(http: Any, ids: dict[str, UUID], **params: Any) -> list[str]:
    answer = await http.get("/v1/alarms", params=params)
    assert answer.status_code == 200, answer.text
    by_id = {str(v): k for k, v in ids.items()}
    return [by_id[a["alarm_id"]] for a in answer.json()]


def _newest_first(names: list[str], ids: dict[str, UUID]) -> list[str]:
    hours = {a[0]: a[5] for a in ALARMS}
    return sorted(names, key=lambda n: (-hours[n], str(ids[n])), reverse=True)


async def test_alarms_are_listed_newest_first_and_filtered_as_the_alarms_page_asks(vee_api: Any,
                                                                                   alarms: dict[str, UUID]) -> None:
    http = vee_api.http
    everything = await _names(http, alarms)
    assert everything == _newest_first([a[0] for a in ALARMS], alarms)
    assert set(await _names(http, alarms, state="open")) == set(everything) - {"silent"}
    assert await _names(http, alarms, state="acknowledged") == ["burst"]
    assert "burst" not in await _names(http, alarms, state="unacknowledged")
    assert await _names(http, alarms, state="cleared") == ["silent"]
    assert set(await _names(http, alarms, severity=["critical", "info"])) == {"burst", "battery", "tamper"}
    assert set(await _names(http, alarms, alarm_type=["continuous_flow", "tamper"])) == {"leak-a", "leak-b",
                                                                                           "tamper"}
    assert set(await _names(http, alarms, meter_id="WM-1")) == {"leak-a", "burst", "tamper"}
    assert await _names(http, alarms, subject="district") == ["imbalance"]
    assert await _names(http, alarms, meter_id="DMA-07") == []  # a district is not a meter
    window = {"from": (NOW - timedelta(hours=5)).isoformat(), "to": (NOW - timedelta(hours=2)).isoformat()}
    assert set(await _names(http, alarms, **window)) == {"imbalance", "battery"}
    assert await _names(http, alarms, state="unacknowledged", severity="warning", meter_id="WM-2") == ["leak-b"]


async def test_pages_follow_each_other_after_the_last_alarm_even_through_equal_instants(
        vee_api: Any, alarms: dict[str, UUID]) -> None:
    http = vee_api.http
    pages: list[list[str]] = []
    after: dict[str, Any] = {}
    while True:
        page = await _names(http, alarms, limit=2, **after)
        pages.append(page)
        if len(page) < 2:
            break
        after = {"after": str(alarms[page[-1]])}
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [n for p in pages for n in p] == await _names(http, alarms)
    unknown = await http.get("/v1/alarms", params={"after": str(uuid4())})
    assert unknown.status_code == 422


async def test_an_acknowledgement_takes_a_note_signs_with_the_caller_and_answers_the_alarm(
        vee_api: Any, alarms: dict[str, UUID]) -> None:
    http = vee_api.http
    operator = auth_headers(vee_api.tenant, roles=("operator",), subject="op-7")
    answer = await http.post(f"/v1/alarms/{alarms['leak-a']}/ack", json={"note": "valve checked"},
                             headers=operator)
    assert answer.status_code == 200, answer.text
    acked = answer.json()
    assert (acked["acknowledged_by"], acked["ack_note"], acked["state"]) == ("op-7", "valve checked", "open")
    assert acked["acknowledged_at"] == "2026-11-21T04:00:00Z"
    blank = (await http.post(f"/v1/alarms/{alarms['leak-b']}/ack", json={"note": "  "})).json()
    assert blank["ack_note"] is None and blank["acknowledged_by"] == "test-platform_admin"
    refused = await http.post(f"/v1/alarms/{alarms['battery']}/ack", json={"acknowledged_by": "two words"})
    assert refused.status_code == 422  # not a name an acknowledgement event can carry
    assert (await http.get(f"/v1/alarms/{alarms['battery']}")).json()["acknowledged_at"] is None
    listed = await _names(http, alarms, state="acknowledged")
    assert set(listed) == {"burst", "leak-a", "leak-b"}
