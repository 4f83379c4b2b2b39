"""The full VEE core behind its database: a gap estimated and then corrected by the late actual,
and the same series and aggregates whatever order the readings arrive in (both databases)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.telemetry import configure_tracing, tracer
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import decode_event, new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import MeterDefined, ReadSchedule, ScheduleKind
from amiflow_schemas.examples import example_payloads
from sqlalchemy import select, update
from vee.adapters import db, series_db
from vee.config import VeeSettings
from vee.core import engine
from vee.core.derive import derive_series
from vee.main import build_runtime
from vee.registry_app import registry_handler
from vee.series_app import series_handler

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"


def ZONES(tenant_id: str) -> str:
    return TZ
START = datetime(2026, 11, 1, 16, tzinfo=UTC)  # 00:00 local, a daily read time
DAILY = ReadSchedule(kind=ScheduleKind.DAILY, at_local="00:00", jitter_s=0)


async def setup(database_url: str, meter_id: str) -> Any:
    runtime = build_runtime(VeeSettings(database_url=database_url), "test")
    runtime.clock = FrozenClock(START + timedelta(days=10))
    await runtime.migrate()
    await setup_meter(runtime, meter_id)
    return runtime


async def setup_meter(runtime: Any, meter_id: str) -> list[Any]:
    """The registry names a daily water meter; returns what the registry handler returned."""
    defined: MeterDefined = example_payloads()["MeterDefined"]
    meter = defined.meter.model_copy(update={"meter_id": meter_id, "schedule": DAILY, "replaces_meter_id": None,
                                             "installed_at": None, "installation_reading": None,
                                             "dial_count": 6})
    event = defined.model_copy(update={"meter": meter, "device_key": f"t/meter/{meter_id}"})
    async with runtime.sessions() as session, session.begin():
        return list(await registry_handler(runtime.clock, ZONES)(session, _envelope(event, meter_id)))


def _envelope(payload: Any, key: str) -> Any:
    at = getattr(payload, "measured_at", START)
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id="t", key=key, occurred_at=at, recorded_at=at,
                        producer="test")


def reading(meter_id: str, day: int, value: str) -> Any:
    received = ReadingReceived.model_validate({
        "meter_id": meter_id, "utility": "water", "measured_at": START + timedelta(days=day), "source": "dtu",
        "gateway_id": "DTU-1", "registers": [{"register": "total", "value": value, "unit": "m3"}]})
    return _envelope(received, meter_id)


async def feed(runtime: Any, envelopes: list[Any]) -> list[Any]:
    handle = series_handler(runtime.clock, ZONES)
    out = []
    for envelope in envelopes:
        async with runtime.sessions() as session, session.begin():
            out += await handle(session, envelope)
    return out


async def test_an_estimated_gap_is_corrected_when_the_late_actual_arrives(database_url: str) -> None:
    runtime = await setup(database_url, "WM-GAP")
    try:
        first = await feed(runtime, [reading("WM-GAP", 0, "100"), reading("WM-GAP", 3, "130")])
        assert {e.payload.status.value for e in first if e.event_type == "ReadingValidated"} >= {"actual"}
        late = await feed(runtime, [reading("WM-GAP", 1, "112")])
        corrected = [e for e in late if e.event_type == "ReadingCorrected"]
        assert corrected, [e.event_type for e in late]
        async with runtime.sessions() as session:
            points = await series_db.latest_points(session, "t", "WM-GAP", None, None, 10)
        by_day = {p["measured_at"]: p for p in points}
        assert by_day[START + timedelta(days=1)]["status"] == "actual"
        assert by_day[START + timedelta(days=1)]["version"] >= 2
        total = sum((p["consumption"] or Decimal(0)) for p in points if p["status"] in ("actual", "estimated"))
        assert total == Decimal("30")
    finally:
        await runtime.engine.dispose()


async def test_reverse_arrival_gives_the_same_series_and_daily_totals(database_url: str) -> None:
    values = [Decimal("500") + Decimal("1.25") * d * d for d in range(8)]
    ordered = await setup(database_url, "WM-IN")
    reverse = await setup(database_url, "WM-REV")
    try:
        await feed(ordered, [reading("WM-IN", d, str(v)) for d, v in enumerate(values)])
        shuffled = [reading("WM-REV", d, str(v)) for d, v in enumerate(values)]
        await feed(reverse, list(reversed(shuffled)))
        results = []
        for runtime, meter in ((ordered, "WM-IN"), (reverse, "WM-REV")):
            async with runtime.sessions() as session:
                points = await series_db.latest_points(session, "t", meter, None, None, 100)
                days = await series_db.buckets(session, "t", meter, "day", None, None)
            results.append(([(p["measured_at"], p["status"], p["consumption"]) for p in points],
                            [(b["bucket_start"], b["consumption"]) for b in days]))
        assert results[0] == results[1]
        assert results[0][1], "daily buckets were aggregated"
    finally:
        await ordered.engine.dispose()
        await reverse.engine.dispose()



async def test_readings_before_the_meter_is_known_fail_visibly_and_are_validated_once_it_is(database_url: str) -> None:
    runtime = build_runtime(VeeSettings(database_url=database_url), "test")
    runtime.clock = FrozenClock(START + timedelta(days=10))
    await runtime.migrate()
    try:
        early = await feed(runtime, [reading("WM-LATE", 0, "10"), reading("WM-LATE", 1, "12.5")])
        assert early == []  # held, not published: the slot's first ReadingValidated will be the real one
        async with runtime.sessions() as session:
            shown = await series_db.latest_points(session, "t", "WM-LATE", None, None, 10)
        assert {p["status"] for p in shown} == {"failed"} and shown[0]["checks"] == ["unknown_meter"]

        defined: MeterDefined = example_payloads()["MeterDefined"]
        meter = defined.meter.model_copy(update={"meter_id": "WM-LATE", "schedule": DAILY, "replaces_meter_id": None,
                                                 "installed_at": None, "installation_reading": None})
        registered = defined.model_copy(update={"meter": meter, "device_key": "t/meter/WM-LATE"})
        async with runtime.sessions() as session, session.begin():
            placed = await registry_handler(runtime.clock, ZONES)(session, _envelope(registered, "WM-LATE"))
        assert {e.payload.status.value for e in placed if e.event_type == "ReadingValidated"} == {"actual"}
        async with runtime.sessions() as session:
            shown = await series_db.latest_points(session, "t", "WM-LATE", None, None, 10)
        assert [p["status"] for p in shown] == ["actual", "actual"]
        assert shown[0]["consumption"] == Decimal("2.5")
    finally:
        await runtime.engine.dispose()


async def test_device_status_raises_an_alarm_once_and_the_timer_estimates_a_silent_meter(database_url: str) -> None:
    from amiflow_schemas.events.devices import BatteryLevel, BatteryStatus, DeviceStatusReported
    from vee.adapters import alarms_db
    from vee.series_app import estimate_silent_meters, status_handler

    runtime = await setup(database_url, "WM-DEV")
    try:
        await feed(runtime, [reading("WM-DEV", 0, "100"), reading("WM-DEV", 1, "101")])
        status = DeviceStatusReported(meter_id="WM-DEV", utility="water", reported_at=START + timedelta(days=1),
                                      valve=None, relay=None, alarms=(), status_word_hex=None, gateway_id=None,
                                      battery=BatteryStatus(level=BatteryLevel.LOW, voltage_v=None,
                                                            remaining_percent=None))
        handle = status_handler(runtime.clock, ZONES)
        raised = []
        for _ in range(2):  # the same condition reported twice is one episode
            async with runtime.sessions() as session, session.begin():
                raised += await handle(session, _envelope(status, "WM-DEV"))
        assert [e.payload.alarm_type.value for e in raised if e.event_type == "AlarmRaised"] == ["battery_low"]
        async with runtime.sessions() as session:
            open_alarms = await alarms_db.search(session, "t", state="open", alarm_type="battery_low",
                                                 subject_id=None, since=None, until=None, limit=10)
        assert len(open_alarms) == 1

        runtime.clock = FrozenClock(START + timedelta(days=9))  # silent for eight days
        touched = await estimate_silent_meters(runtime.sessions, runtime.clock, ZONES, lambda: None)
        assert touched == 1
        async with runtime.sessions() as session:
            points = await series_db.latest_points(session, "t", "WM-DEV", None, None, 20)
        assert any(p["status"] == "estimated" for p in points)
        assert await estimate_silent_meters(runtime.sessions, runtime.clock, ZONES, lambda: None) == 0  # idempotent
    finally:
        await runtime.engine.dispose()


async def test_an_operator_edit_is_a_new_version_kept_in_the_log_and_a_bad_one_is_refused(database_url: str) -> None:
    from vee.main import api

    runtime = await setup(database_url, "WM-EDIT")
    await feed(runtime, [reading("WM-EDIT", d, v) for d, v in ((0, "100"), (1, "103"), (2, "150"), (3, "109"))])
    app = api(VeeSettings(database_url=database_url))
    app.state.runtime.clock = runtime.clock
    async with asgi_client(app, "http://vee", "t") as http:
        slot = (START + timedelta(days=2)).isoformat()
        edit = {"value": "106", "edited_by": "analyst-1", "reason_code": "misread", "comment": "photo shows 106"}
        response = await http.post(f"/v1/meters/WM-EDIT/readings/{slot}/edits", json=edit)
        assert response.status_code == 201, response.text
        points = {p["measured_at"]: p for p in (await http.get("/v1/meters/WM-EDIT/readings")).json()}
        edited = points[slot.replace("+00:00", "Z")]
        assert edited["status"] == "edited" and edited["version"] >= 2
        assert Decimal(edited["consumption"]) == Decimal("3")
        log = (await http.get("/v1/meters/WM-EDIT/edits")).json()
        assert [(e["edited_by"], e["reason_code"]) for e in log] == [("analyst-1", "misread")]
        runtime.clock.advance(timedelta(minutes=5))  # a later edit of the same slot outranks the first
        backwards = {**edit, "value": "500"}  # above the next read (109): the next interval would run backwards
        refused = await http.post(f"/v1/meters/WM-EDIT/readings/{slot}/edits", json=backwards)
        assert refused.status_code == 422 and refused.json()["detail"]["checks"]
        unknown = await http.post(f"/v1/meters/NOPE/readings/{slot}/edits", json=edit)
        assert unknown.status_code == 404
    await app.state.runtime.engine.dispose()
    await runtime.engine.dispose()


async def test_a_buildings_consumption_is_the_exact_sum_of_its_meters_per_local_day(database_url: str) -> None:
    from vee.main import api

    runtime = await setup(database_url, "WM-A")
    defined: MeterDefined = example_payloads()["MeterDefined"]
    building = defined.meter.groups.building
    assert building, "the example meter belongs to a building"
    second = defined.meter.model_copy(update={"meter_id": "WM-B", "schedule": DAILY, "replaces_meter_id": None,
                                              "installed_at": None, "installation_reading": None})
    async with runtime.sessions() as session, session.begin():
        await registry_handler(runtime.clock, ZONES)(session, _envelope(
            defined.model_copy(update={"meter": second, "device_key": "t/meter/WM-B"}), "WM-B"))
    await feed(runtime, [reading("WM-A", d, v) for d, v in ((0, "10"), (1, "10.1"), (2, "10.3"))])
    await feed(runtime, [reading("WM-B", d, v) for d, v in ((0, "5"), (1, "5.2"), (2, "5.5"))])
    app = api(VeeSettings(database_url=database_url))
    async with asgi_client(app, "http://vee", "t") as http:
        days = (await http.get(f"/v1/groups/building/{building}/consumption", params={"granularity": "day"})).json()
    await app.state.runtime.engine.dispose()
    await runtime.engine.dispose()
    totals = [(Decimal(d["consumption"]), d["meters"]) for d in days]
    assert sum(t for t, _ in totals) == Decimal("0.8")  # 0.3 + 0.5, exactly
    assert all(meters == 2 for total, meters in totals if total > 0)


async def test_held_readings_are_validated_together_once_the_meter_is_known(database_url: str) -> None:
    runtime = build_runtime(VeeSettings(database_url=database_url), "test")
    runtime.clock = FrozenClock(START + timedelta(days=10))  # every read is held at the same instant
    await runtime.migrate()
    try:
        held = [reading("WM-HOLD", d, v) for d, v in ((0, "10"), (1, "11"), (3, "13.4"), (2, "12.5"))]
        await feed(runtime, held)
        async with runtime.sessions() as session, session.begin():
            # An update writes a new row version at the end of PostgreSQL's heap: a query without an order
            # would now return the first two reads last.
            table = series_db.unplaced_reads
            await session.execute(update(table).where(table.c.arrival <= 2).values(envelope=table.c.envelope))
        defined: MeterDefined = example_payloads()["MeterDefined"]
        meter = defined.meter.model_copy(update={"meter_id": "WM-HOLD", "schedule": DAILY, "replaces_meter_id": None,
                                                 "installed_at": None, "installation_reading": None})
        registered = defined.model_copy(update={"meter": meter, "device_key": "t/meter/WM-HOLD"})
        async with runtime.sessions() as session, session.begin():
            placed = await registry_handler(runtime.clock, ZONES)(session, _envelope(registered, "WM-HOLD"))
        # Merged with one derivation: every day is actual from the start (day 2, which arrived after day 3,
        # is never estimated across the gap first), nothing is corrected, and each point is caused by the
        # reading it came from.
        readings = [e for e in placed if e.event_type in ("ReadingValidated", "ReadingCorrected")]
        assert sorted((e.payload.measured_at, e.event_type, e.payload.status.value) for e in readings) == [
            (START + timedelta(days=d), "ReadingValidated", "actual") for d in range(4)]
        arrived = {e.payload.measured_at: e.event_id for e in held}
        assert [e.causation_id for e in readings] == [arrived[e.payload.measured_at] for e in readings]
        async with runtime.sessions() as session:
            assert (await session.execute(select(table))).first() is None  # nothing is held any more
    finally:
        await runtime.engine.dispose()


async def test_a_held_reading_is_validated_in_the_trace_it_arrived_in(database_url: str) -> None:
    # One trace per reading, even for one that beat its meter's registration: its ReadingValidated goes out
    # with the trace context of the span it arrived in, not with the registry event's.
    configure_tracing("vee-tests", otlp_endpoint=None)  # recording spans (once per process; a no-op after)
    runtime = build_runtime(VeeSettings(database_url=database_url), "test")
    await runtime.migrate()
    try:
        early = reading("WM-EARLY", 0, "7")
        with tracer().start_as_current_span("vee.validation ReadingReceived") as arrival:
            assert await feed(runtime, [early]) == []  # held
        with tracer().start_as_current_span("vee.registry MeterDefined") as registry:
            placed = await setup_meter(runtime, "WM-EARLY")
        assert placed == []  # staged in the reading's own trace, not returned into the registry event's
        async with runtime.sessions() as session:
            rows = (await session.execute(select(db.outbox.c.message_value, db.outbox.c.headers))).all()
        validated = [(decode_event(r.message_value), dict(json.loads(r.headers))) for r in rows]
        [(event, headers)] = [(e, h) for e, h in validated if e.event_type == "ReadingValidated"]
        assert event.causation_id == early.event_id
        trace_id = headers["traceparent"].split("-")[1]
        assert trace_id == format(arrival.get_span_context().trace_id, "032x")
        assert trace_id != format(registry.get_span_context().trace_id, "032x")
    finally:
        await runtime.engine.dispose()


async def test_a_reading_in_order_is_derived_from_where_it_reaches_through_the_database(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The series' fingerprint survives the round trip through the state row, so a reading after a kept
    # series re-derives only the days it reaches, not the whole series again.
    derived: list[Any] = []

    def watched(state: Any, context: Any, rules: Any, changed_from: Any = None) -> Any:
        derived.append(derive_series(state, context, rules, changed_from))
        return derived[-1]

    monkeypatch.setattr(engine, "derive_series", watched)
    runtime = await setup(database_url, "WM-TAIL")
    try:
        await feed(runtime, [reading("WM-TAIL", d, str(100 + d)) for d in range(6)])
        async with runtime.sessions() as session:
            kept = await series_db.load(session, "t", "WM-TAIL")
        assert kept is not None and kept.derived_with is not None
        assert [d.since is not None for d in derived] == [False, False, True, True, True, True]
        assert [len(d.points) for d in derived[2:]] == [2, 2, 2, 2]  # the day before and the reading's own
    finally:
        await runtime.engine.dispose()
