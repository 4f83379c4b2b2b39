"""vee.md's representative scenarios end to end: registry events and raw readings go onto the real
broker, a real VEE worker (Faust, PostgreSQL) validates them, and the test reads what came out on
amiflow.vee.readings and amiflow.vee.alarms — gap and late actual (T2/T19), long gap (T3), rollover
(T5), meter swap (T7), leak (T13) and a district's water balance (T16, through the daily job)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import asgi_client, create_database, unique
from amiflow_schemas import decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import (
    MeterDefined,
    MeterGroups,
    MeterRemoval,
    MeterReplaced,
    MeterReplacement,
    MeterStatus,
    ReadSchedule,
    ScheduleKind,
)
from amiflow_schemas.examples import example_payloads
from vee.adapters import alarms_db, registry_db, series_db
from vee.config import VeeSettings
from vee.main import api

pytestmark = pytest.mark.e2e

ZONE = ZoneInfo("Asia/Shanghai")
H, D = timedelta(hours=1), timedelta(days=1)
# Recent enough that nothing is settled away, old enough that every day has closed for the district job.
T0 = datetime.combine(datetime.now(ZONE).date() - timedelta(days=24), time(0), tzinfo=ZONE).astimezone(UTC)
HOURLY = ReadSchedule(kind=ScheduleKind.HOURLY, at_local=None, jitter_s=0)
DAILY = ReadSchedule(kind=ScheduleKind.DAILY, at_local="00:00", jitter_s=0)
LIKE_DAYS = {1: ["1.2", "1.8", "3.3", "2.1", "0.9", "1.2"], 8: ["0.9", "2.1", "2.7", "1.8", "1.2", "0.9"],
             15: ["0.9", "2.1", "3.0", "2.1", "0.9", "0.9"]}  # hours 06-12 of the three previous like days
LEAK_LITRES = [6, 7, 6, 8, 7, 6, 40, 90, 30, 15, 10, 12, 9, 8, 11, 25, 60, 80, 45, 20, 15, 10, 8, 7]


@dataclass
class Feed:
    """What the test puts on the broker, in order, per tenant."""

    tenant: str
    registry: list[Any] = field(default_factory=list)
    readings: list[tuple[str, datetime, Decimal]] = field(default_factory=list)
    late: list[tuple[str, datetime, Decimal]] = field(default_factory=list)  # sent once the gap was estimated

    def meter(self, meter_id: str, schedule: ReadSchedule = HOURLY, dials: int = 8, district: str | None = None,
              **changes: Any) -> None:
        defined: MeterDefined = example_payloads()["MeterDefined"]
        state = defined.meter.model_copy(update={
            "meter_id": meter_id, "schedule": schedule, "dial_count": dials, "replaces_meter_id": None,
            "installed_at": None, "installation_reading": None,
            "groups": MeterGroups(building=None, customer_type="residential", district_metered_area=district),
            **changes})
        self.registry.append(defined.model_copy(update={"meter": state,
                                                        "device_key": f"{self.tenant}/meter/{meter_id}"}))

    def read(self, meter_id: str, at: datetime, value: Decimal | str, *, late: bool = False) -> None:
        (self.late if late else self.readings).append((meter_id, at, Decimal(value)))


def scenarios(feed: Feed) -> None:
    # T2 + T19: 02:00 is missing, interpolated when 03:00 comes, then the real 02:00 read arrives late.
    feed.meter("GAP")
    # Late as in the field: after the gap was estimated. Sent with the others, it would come in the same
    # consumed batch, be merged with them and never be estimated at all.
    for hour, value in ((0, "500.0"), (1, "501.0"), (3, "503.4")):
        feed.read("GAP", T0 + 20 * D + hour * H, value)
    feed.read("GAP", T0 + 20 * D + 2 * H, "502.5", late=True)
    # T3: three weeks of hourly history, then 07-11 h missing on the fourth like day.
    feed.meter("LONG")
    target = T0 + 22 * D + 6 * H
    uses, at = [], T0 + D
    while at < target:
        shaped = LIKE_DAYS.get((at - T0) // D)
        hour = (at - T0) % D // H
        uses.append((at, Decimal(shaped[hour - 6]) if shaped and 6 <= hour < 12 else Decimal("0.5")))
        at += H
    register = Decimal("2000.0") - sum(u for _, u in uses)
    feed.read("LONG", T0 + D, register)
    for at, use in uses:
        register += use
        feed.read("LONG", at + H, register)
    feed.read("LONG", target + 6 * H, "2012.0")
    # T5: five dials roll over between the second and third daily reads.
    feed.meter("ROLL", schedule=DAILY, dials=5)
    for day, value in enumerate(["99950", "99990", "00025", "00070"]):
        feed.read("ROLL", T0 + (10 + day) * D, value)
    # T7: OLD comes off at noon with 8518.0, NEW goes on with 3.0 and reads 12.0 the next midnight.
    swap = T0 + 11 * D + 12 * H
    feed.meter("OLD", schedule=DAILY, dials=5)
    _swap(feed, swap)
    # Two meters are two Kafka keys: NEW's first read goes out before OLD's last ones, and still spans the swap.
    feed.read("NEW", T0 + 12 * D, "12.0")
    feed.read("OLD", T0 + 10 * D, "8500.0")
    feed.read("OLD", T0 + 11 * D, "8512.0")
    # T13: water in every hour of a day.
    feed.meter("LEAK")
    litres = Decimal(120000)
    feed.read("LEAK", T0 + 5 * D, litres / 1000)
    for hour, used in enumerate(LEAK_LITRES, start=1):
        litres += used
        feed.read("LEAK", T0 + 5 * D + hour * H, litres / 1000)
    # T16: a district whose inflow is 10 m3/h while its four customers use 1.5 m3/h each (40 % lost).
    for meter_id, rate in (("INFLOW", Decimal(10)), *((f"CUST-{n}", Decimal("1.5")) for n in range(4))):
        feed.meter(meter_id, district="DMA-E2E")
        for hour in range(25):
            feed.read(meter_id, T0 + 21 * D + hour * H, 1000 + rate * hour)


def _swap(feed: Feed, swap: datetime) -> None:
    old_key, new_key = f"{feed.tenant}/meter/OLD", f"{feed.tenant}/meter/NEW"
    old = feed.registry[-1].meter
    removed = old.model_copy(update={"status": MeterStatus.REMOVED, "removal": MeterRemoval(
        removed_at=swap, removal_reading=Decimal("8518.0"), replaced_by_meter_id="NEW")})
    feed.registry.append(MeterReplaced(device_key=old_key, revision=2, meter=removed, replacement=MeterReplacement(
        new_meter_id="NEW", removed_at=swap, removal_reading=Decimal("8518.0"), installed_at=swap,
        installation_reading=Decimal("3.0"))))
    new = old.model_copy(update={"meter_id": "NEW", "replaces_meter_id": "OLD", "installed_at": swap,
                                 "installation_reading": Decimal("3.0")})
    defined: MeterDefined = example_payloads()["MeterDefined"]
    feed.registry.append(defined.model_copy(update={"meter": new, "device_key": new_key, "revision": 1}))


async def publish(bootstrap: str, feed: Feed, database_url: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        for payload in feed.registry:
            await _send(producer, "amiflow.registry.devices", payload, feed.tenant, payload.device_key, T0)
        await producer.flush()
        # The registry first, as in the field: every meter known, OLD's removal included (two device keys
        # are two partitions, so NEW's registration may be read before OLD's removal).
        await registry_known(database_url, feed)
        for meter_id, at, value in feed.readings:
            await _send(producer, "amiflow.ingest.readings", _reading(meter_id, at, value), feed.tenant, meter_id, at)
        await producer.flush()
        for meter_id, at, value in feed.late:
            await estimated(database_url, feed.tenant, meter_id, at)
            await _send(producer, "amiflow.ingest.readings", _reading(meter_id, at, value), feed.tenant, meter_id, at)
    finally:
        await producer.stop()


def _reading(meter_id: str, at: datetime, value: Decimal) -> ReadingReceived:
    return ReadingReceived.model_validate({
        "meter_id": meter_id, "utility": "water", "measured_at": at, "source": "dtu", "gateway_id": "DTU-1",
        "registers": [{"register": "total", "value": str(value), "unit": "m3"}]})


async def estimated(database_url: str, tenant: str, meter_id: str, at: datetime) -> None:
    """Wait until VEE has stored a point at ``at`` (an estimate, as nothing was read there yet)."""
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    try:
        for _ in range(240):
            async with runtime.sessions() as session:
                if await series_db.latest_points(session, tenant, meter_id, at, at + timedelta(seconds=1), 1):
                    return
            await asyncio.sleep(0.5)
        raise AssertionError(f"VEE never estimated {meter_id} at {at}")
    finally:
        await runtime.engine.dispose()


async def _send(producer: AIOKafkaProducer, topic: str, payload: Any, tenant: str, key: str, at: datetime) -> None:
    envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key=key, occurred_at=at,
                            recorded_at=at, producer="test")
    await producer.send(topic, encode_event(envelope), key=key.encode(), headers=envelope_headers(envelope))


async def registry_known(database_url: str, feed: Feed) -> None:
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    await runtime.migrate()
    wanted = {e.meter.meter_id: e.meter.status for e in feed.registry}  # each meter's last registry state
    try:
        for _ in range(240):
            async with runtime.sessions() as session:
                known = {m: await registry_db.meter_state(session, feed.tenant, m) for m in wanted}
            if all(state is not None and state.status is wanted[m] for m, state in known.items()):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"VEE did not learn the registry: {known}")
    finally:
        await runtime.engine.dispose()


async def configure_district(database_url: str, tenant: str) -> None:
    """Through VEE's own API (in process, on the worker's database): which meter feeds DMA-E2E."""
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    await runtime.migrate()
    try:
        for _ in range(120):  # every member first: a district evaluated with half its meters would look leaky
            async with runtime.sessions() as session:
                members = await registry_db.meters_in_group(session, tenant, "district_metered_area", "DMA-E2E")
                # ...and every member's last reading of the day validated, so the first look sees a whole day.
                done = [await series_db.latest_points(session, tenant, m.meter_id, T0 + 22 * D, T0 + 22 * D + H, 1)
                        for m in members]
            if len(members) == 5 and all(done):
                break
            await asyncio.sleep(1)
        async with asgi_client(app, "http://vee") as http:
            for _ in range(120):
                answer = await http.put("/v1/districts/DMA-E2E", headers={"X-Tenant-Id": tenant},
                                        json={"inflow_meter_ids": ["INFLOW"], "updated_by": "e2e"})
                if answer.status_code == 200:
                    return
                await asyncio.sleep(1)
            raise AssertionError(f"district not accepted: {answer.text}")
    finally:
        await runtime.engine.dispose()


async def alarms_kept(database_url: str, tenant: str, subject_id: str) -> list[tuple[str, str]]:
    """The alarms this test's worker recorded for a subject: one row per episode it raised."""
    app = api(VeeSettings(database_url=database_url))
    runtime = app.state.runtime
    try:
        async with runtime.sessions() as session:
            rows = await alarms_db.search(session, tenant, state=None, alarm_type=None, subject_id=subject_id,
                                          since=None, until=None, limit=100)
        return [(row["alarm_type"], row["alarm_id"]) for row in rows]
    finally:
        await runtime.engine.dispose()


async def collect(bootstrap: str, tenant: str, done: Callable[[list[Any]], bool]) -> list[Any]:
    consumer = AIOKafkaConsumer("amiflow.vee.readings", "amiflow.vee.alarms", bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(300):
            while not done(found):
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    found += [e for e in (decode_event(m.value) for m in messages) if e.tenant_id == tenant]
    except TimeoutError:
        pass  # the assertions below say what is missing
    finally:
        await consumer.stop()
    return found


class Outcome:
    """The events of one tenant, by meter and slot."""

    def __init__(self, events: list[Any]) -> None:
        # The outbox relay may publish a row twice (a send acknowledged, then the delete lost to an error);
        # consumers drop the copy by event id, and so does this test. Two ids for one fact still fail it.
        self.events = list({e.event_id: e for e in events}.values())

    def versions(self, meter_id: str, at: datetime) -> list[Any]:
        return sorted((e for e in self.events if e.event_type in ("ReadingValidated", "ReadingCorrected")
                       and e.payload.meter_id == meter_id and e.payload.measured_at == at),
                      key=lambda e: getattr(e.payload, "reading_version", 1))

    def latest(self, meter_id: str, at: datetime) -> Any:
        found = self.versions(meter_id, at)
        return found[-1].payload if found else None

    def raised(self, alarm_type: str, subject_id: str) -> list[Any]:
        # By alarm id: alarm ids are name-based, so a second id is a second alarm, whatever the event ids.
        return list({e.payload.alarm_id: e.payload for e in self.events if e.event_type == "AlarmRaised"
                     and e.payload.alarm_type.value == alarm_type and e.payload.subject_id == subject_id}.values())


def complete(events: list[Any]) -> bool:
    seen = Outcome(events)
    across = seen.latest("NEW", T0 + 12 * D)  # its last version spans the swap, whatever came first
    return (len(seen.versions("GAP", T0 + 20 * D + 2 * H)) >= 2 and seen.latest("LONG", T0 + 22 * D + 12 * H)
            is not None and seen.latest("ROLL", T0 + 13 * D) is not None and across is not None
            and across.previous_measured_at == T0 + 11 * D and bool(seen.raised("continuous_flow", "LEAK"))
            and bool(seen.raised("district_imbalance", "DMA-E2E")))


def test_the_representative_scenarios_come_out_of_kafka_as_the_spec_says(
        own_broker: str, postgres_admin_url: str, tmp_path: Path) -> None:
    kafka_bootstrap = own_broker  # see own_broker: the outcome must be this test's worker's alone
    tenant = unique("scen")
    database_url = asyncio.run(create_database(postgres_admin_url, "veescen"))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AMIFLOW_ENV": "test",
           "VEE_DATABASE_URL": database_url, "VEE_OPS_PORT": str(free_port()), "VEE_FAUST_APP_ID": f"vee-{tenant}",
           "AMIFLOW_DATA_DIR": str(tmp_path), "VEE_ESTIMATION_INTERVAL_S": "3600", "VEE_DISTRICT_INTERVAL_S": "3",
           "VEE_DISTRICT_CLOSE_DELAY_S": "0"}
    feed = Feed(tenant)
    scenarios(feed)
    with open(tmp_path / "vee-worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "vee.main", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        asyncio.run(publish(kafka_bootstrap, feed, database_url))
        asyncio.run(configure_district(database_url, tenant))
        seen = Outcome(asyncio.run(collect(kafka_bootstrap, tenant, complete)))
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()

    gap = seen.versions("GAP", T0 + 20 * D + 2 * H)
    assert [(e.event_type, e.payload.status.value, e.payload.estimation_method) for e in gap][:1] == [
        ("ReadingValidated", "estimated", "linear_interpolation")]
    assert gap[0].payload.registers[0].value == Decimal("502.2") and gap[0].payload.consumption == Decimal("1.2")
    late = gap[-1].payload
    assert (gap[-1].event_type, late.status.value, late.correction_reason.value, late.supersedes_event_id) == (
        "ReadingCorrected", "actual", "late_actual", gap[0].event_id)
    assert late.consumption == Decimal("1.5")

    target = T0 + 22 * D + 6 * H
    long_gap = [seen.latest("LONG", target + k * H) for k in range(1, 7)]
    assert [p.consumption for p in long_gap] == [Decimal(v) for v in ["1.2", "2.4", "3.6", "2.4", "1.2", "1.2"]]
    assert {p.estimation_method.value for p in long_gap[:5]} == {"like_day"} and long_gap[5].status.value == "actual"

    assert [seen.latest("ROLL", T0 + (10 + k) * D).consumption for k in (1, 2, 3)] == [40, 35, 45]
    across = seen.latest("NEW", T0 + 12 * D)
    assert (across.status.value, across.consumption, across.previous_measured_at) == ("actual", Decimal("15.0"),
                                                                                      T0 + 11 * D)

    [leak] = seen.raised("continuous_flow", "LEAK")
    assert leak.observed_value == Decimal("0.006")
    kept = asyncio.run(alarms_kept(database_url, tenant, "LEAK"))
    assert [alarm_id for kind, alarm_id in kept if kind == "continuous_flow"] == [str(leak.alarm_id)]
    [imbalance] = seen.raised("district_imbalance", "DMA-E2E")
    assert imbalance.observed_value == Decimal(40)
