"""The batch reading handler against both databases: a consumed batch applied in one transaction ends with the
same series, points, buckets and alarms as the same readings applied one transaction each — several readings
of one meter out of order, the old and the new meter of a swap, duplicates, and a meter not known yet — and
publishes no more: a series' readings are merged with one derivation, so a slot read in the batch is never
published as an estimate first."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.deadletter import ConsumedRecord, DeadLetters
from amiflow_runtime.pipeline import BatchHandler, EventPipeline, Handler
from amiflow_runtime.service import ServiceRuntime
from amiflow_runtime.testing import create_database
from amiflow_schemas import Envelope, decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import (
    MeterDefined,
    MeterRemoval,
    MeterReplaced,
    MeterReplacement,
    MeterStatus,
    ReadSchedule,
    ScheduleKind,
)
from amiflow_schemas.examples import example_payloads
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from vee.adapters import alarms_db, db, series_db
from vee.config import VeeSettings
from vee.main import build_runtime
from vee.registry_app import registry_batch_handler, registry_handler
from vee.series_app import series_batch_handler, series_handler

pytestmark = pytest.mark.integration

TENANT = "t"
START = datetime(2026, 11, 1, 16, tzinfo=UTC)  # 00:00 local, a daily read time
SWAP = START + timedelta(days=2, hours=12)
DAILY = ReadSchedule(kind=ScheduleKind.DAILY, at_local="00:00", jitter_s=0)


def ZONES(tenant_id: str) -> str:
    return "Asia/Shanghai"


def _envelope(payload: Any, key: str, event_id: uuid.UUID | None = None) -> Envelope[Any]:
    at = getattr(payload, "measured_at", START)
    return new_envelope(payload, event_id=event_id or uuid.uuid4(), tenant_id=TENANT, key=key, occurred_at=at,
                        recorded_at=at, producer="test")


def _reading(meter_id: str, day: int, value: str) -> Envelope[Any]:
    received = ReadingReceived.model_validate({
        "meter_id": meter_id, "utility": "water", "measured_at": START + timedelta(days=day), "source": "dtu",
        "gateway_id": "DTU-1", "registers": [{"register": "total", "value": value, "unit": "m3"}]})
    return _envelope(received, meter_id)


def _registry() -> list[Envelope[Any]]:
    """WM-A, and OLD replaced by NEW at SWAP (removal reading 8518, installation reading 3)."""
    defined: MeterDefined = example_payloads()["MeterDefined"]
    plain = {"schedule": DAILY, "replaces_meter_id": None, "installed_at": None, "installation_reading": None,
             "dial_count": 6}
    events = []
    for meter_id in ("WM-A", "OLD"):
        meter = defined.meter.model_copy(update={"meter_id": meter_id, **plain})
        events.append(_envelope(defined.model_copy(update={"meter": meter, "device_key": f"t/meter/{meter_id}",
                                                           "revision": 1}), meter_id))
    old = events[-1].payload.meter
    removed = old.model_copy(update={"status": MeterStatus.REMOVED, "removal": MeterRemoval(
        removed_at=SWAP, removal_reading=Decimal("8518.0"), replaced_by_meter_id="NEW")})
    events.append(_envelope(MeterReplaced(device_key="t/meter/OLD", revision=2, meter=removed,
                                          replacement=MeterReplacement(
                                              new_meter_id="NEW", removed_at=SWAP, removal_reading=Decimal("8518.0"),
                                              installed_at=SWAP, installation_reading=Decimal("3.0"))), "OLD"))
    new = old.model_copy(update={"meter_id": "NEW", "replaces_meter_id": "OLD", "installed_at": SWAP,
                                 "installation_reading": Decimal("3.0")})
    events.append(_envelope(defined.model_copy(update={"meter": new, "device_key": "t/meter/NEW", "revision": 1}),
                            "NEW"))
    return events


def _ghost_defined() -> Envelope[Any]:
    defined: MeterDefined = example_payloads()["MeterDefined"]
    meter = defined.meter.model_copy(update={"meter_id": "GHOST", "schedule": DAILY, "replaces_meter_id": None,
                                             "installed_at": None, "installation_reading": None, "dial_count": 6})
    return _envelope(defined.model_copy(update={"meter": meter, "device_key": "t/meter/GHOST", "revision": 1}),
                     "GHOST")


def _batch() -> list[Envelope[Any]]:
    """One consumed batch, in delivery order."""
    a = [_reading("WM-A", 0, "100"), _reading("WM-A", 3, "130"), _reading("WM-A", 1, "112"),
         _reading("WM-A", 4, "141")]
    resent = decode_event(encode_event(a[2]))  # the same event delivered again: the inbox drops it
    reuploaded = _reading("WM-A", 1, "112")  # the same reading uploaded again: a new event, nothing new to publish
    return [a[0], a[1], _reading("OLD", 0, "8490.0"), a[2], _reading("GHOST", 1, "7.5"),
            _reading("NEW", 3, "12.0"), resent, _reading("OLD", 1, "8500.0"), a[3], reuploaded,
            _reading("OLD", 2, "8512.0"), _reading("GHOST", 2, "9.0")]


def _record(envelope: Envelope[Any], offset: int) -> ConsumedRecord:
    return ConsumedRecord(topic="amiflow.ingest.readings", partition=0, offset=offset, key=envelope.key.encode(),
                          value=encode_event(envelope), headers=envelope_headers(envelope))


async def _vee(url: str) -> ServiceRuntime:
    runtime = build_runtime(VeeSettings(database_url=url), "test")
    runtime.clock = FrozenClock(START + timedelta(days=10))
    await runtime.migrate()
    handle = registry_handler(runtime.clock, ZONES)
    for envelope in _registry():
        async with runtime.sessions() as session, session.begin():
            await handle(session, envelope)
    return runtime


def _pipeline(runtime: ServiceRuntime, handler: Handler | BatchHandler) -> EventPipeline:
    # Nothing here may fail: a dead letter would need the broker, and the test would fail on it.
    return EventPipeline(consumer="vee.validation", sessions=runtime.sessions, inbox=db.inbox, outbox=db.outbox,
                         handler=handler, dead_letters=cast(DeadLetters, None), clock=runtime.clock)


async def _stored(runtime: ServiceRuntime) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the readings wrote (the outbox as decoded events; alarm event ids are random)."""
    tables = {"meter_series": series_db.meter_series, "series_points": series_db.series_points,
              "consumption_buckets": series_db.consumption_buckets, "alarms": alarms_db.alarms}
    stored: dict[str, list[tuple[Any, ...]]] = {}
    async with runtime.sessions() as session:
        for name, table in tables.items():
            rows = await session.execute(select(table).order_by(*table.primary_key.columns))
            stored[name] = [tuple(r) for r in rows]
        held = await session.execute(select(series_db.unplaced_reads).order_by(series_db.unplaced_reads.c.arrival))
        stored["unplaced_reads"] = [(r.meter_id, r.event_id, r.arrival) for r in held]
        outbox = await session.execute(select(db.outbox.c.message_value).order_by(db.outbox.c.id))
        events = [decode_event(r.message_value) for r in outbox]
        stored["outbox"] = [(e.event_type, e.key, e.event_id if e.event_type.startswith("Reading") else None,
                             e.causation_id, e.payload.model_dump_json()) for e in events]
    return stored


def _newest(stored: dict[str, list[tuple[Any, ...]]]) -> dict[tuple[Any, Any], tuple[Any, ...]]:
    """Each slot's newest version, without what names the version (number, event id, what it superseded, why,
    when it was recorded)."""
    newest: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for row in stored["series_points"]:  # ordered by key, so by version within a slot
        series_id, at = row[1], row[2]
        newest[series_id, at] = row[5:14]  # meter … edit
    return newest


def _kept(stored: dict[str, list[tuple[Any, ...]]]) -> dict[str, tuple[Any, ...]]:
    """The reads each series keeps, and which kinds of episode it has open (its published versions differ by
    design, and so may an episode's start: see the test)."""
    kept = {}
    for row in stored["meter_series"]:
        state = json.loads(row[2])
        open_kinds = sorted((e["kind"], e["origin"]) for e in state["episodes"] if e.get("ended_at") is None)
        kept[row[1]] = (state["reads"], open_kinds, state.get("last_heard_at"))
    return kept


def _alarms(stored: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Each alarm's kind, severity, subject, rule, state and what ended it (not its start: see the test)."""
    return sorted((a[2], a[3], a[5], a[7], a[14], a[16]) for a in stored["alarms"])


@pytest.fixture
async def twin_url(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A second empty database on the same backend: the one-by-one side of the comparison."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'one-by-one.db'}"
    return await create_database(request.getfixturevalue("postgres_admin_url"))


async def test_a_batch_gives_the_events_and_rows_of_its_readings_applied_one_by_one(database_url: str,
                                                                                    twin_url: str) -> None:
    batched, single = await _vee(database_url), await _vee(twin_url)
    offered: list[list[str]] = []
    returned: list[tuple[uuid.UUID, Envelope[Any]]] = []  # (the reading handled, an event its call returned)
    scope = series_batch_handler(batched.clock, ZONES).scope

    @asynccontextmanager
    async def watched(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> AsyncIterator[Handler]:
        offered.append([e.payload.meter_id for e in envelopes])
        async with scope(session, envelopes) as handle:
            async def answered(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
                events = await handle(session, envelope)
                returned.extend((envelope.event_id, e) for e in events)
                return events

            yield answered

    try:
        batch = _batch()
        records = [_record(envelope, offset) for offset, envelope in enumerate(batch)]
        await _pipeline(batched, BatchHandler(watched)).apply_batch(records)
        one_by_one = _pipeline(single, series_handler(single.clock, ZONES))
        for record in records:
            await one_by_one.apply(record)
        # The registry names GHOST afterwards: its held readings are validated, in arrival order (on the
        # batched side through the registry's batch scope, which takes the batch's meter locks first).
        ghost = _ghost_defined()
        async with batched.sessions() as session, session.begin():
            async with registry_batch_handler(batched.clock, ZONES).scope(session, [ghost]) as handle:
                await handle(session, ghost)
        async with single.sessions() as session, session.begin():
            await registry_handler(single.clock, ZONES)(session, ghost)

        assert len(offered) == 1 and len(offered[0]) == len(batch) - 1  # one scope, the re-sent event dropped
        got, expected = await _stored(batched), await _stored(single)
    finally:
        await batched.engine.dispose()
        await single.engine.dispose()

    # The same ending: every slot's newest version says the same, the buckets and the kept reads are the same;
    # only the versions on the way differ.
    assert _newest(got) == _newest(expected)
    assert got["consumption_buckets"] == expected["consumption_buckets"]
    # An alarm episode keeps the start it was raised with: one by one, WM-A's continuous flow was first seen
    # with the reading of day 4; merged, the data shows it from day 2. The same alarms are open either way.
    assert _alarms(got) == _alarms(expected)
    began = {(a[2], a[5]): a[8] for a in got["alarms"]}
    assert all(began[a[2], a[5]] <= a[8] for a in expected["alarms"])
    assert _kept(got) == _kept(expected)
    assert {r[1]: r[3] for r in got["meter_series"]} == {r[1]: r[3] for r in expected["meter_series"]}
    published = [e for e in got["outbox"] if e[0].startswith("Reading")]
    one_by_one = [e for e in expected["outbox"] if e[0].startswith("Reading")]
    assert len(published) < len(one_by_one)  # WM-A's day 1 and 2 were estimated, then corrected, one by one

    # And the outputs are the right ones, not only the same ones.
    points = {(r[1], r[2]): r for r in got["series_points"]}  # (series, slot) → newest version
    day = [START + timedelta(days=d) for d in range(5)]
    assert {s for s, _ in points} == {"WM-A", "OLD", "GHOST"}  # NEW reads into OLD's series
    # Day 1's reading came in the batch with the rest of WM-A's: published once, as actual, never estimated.
    assert [(r[3], r[6]) for r in got["series_points"] if r[1] == "WM-A" and r[2] == day[1]] == [(1, "actual")]
    singly = [(r[3], r[6]) for r in expected["series_points"] if r[1] == "WM-A" and r[2] == day[1]]
    assert singly[0][1] == "estimated" and singly[-1][1] == "actual"
    # Each point read in the batch is caused by the reading it came from (GHOST's came later, by the registry).
    caused = {e[2]: e[3] for e in published}
    actual = [r for r in got["series_points"] if r[6] == "actual" and r[1] != "GHOST"]
    sources: dict[tuple[str, datetime], set[uuid.UUID]] = {}
    for e in batch:
        sources.setdefault((e.payload.meter_id, e.payload.measured_at), set()).add(e.event_id)
    assert len(actual) == 8 and all(caused[uuid.UUID(r[4])] in sources[r[5], r[2]] for r in actual)
    # ...and comes out of that reading's own call (in its span: one trace per reading), even when merged.
    assert returned and all(event.causation_id == handled for handled, event in returned)
    consumption = {(s, at): r[8] for (s, at), r in points.items()}
    assert consumption["WM-A", day[1]] == Decimal("12") and consumption["WM-A", day[4]] == Decimal("11")
    assert consumption["WM-A", day[2]] + consumption["WM-A", day[3]] == Decimal("18")  # the gap, estimated
    # NEW's first interval spans the swap: 8518 - 8512 on OLD, then 12 - 3 on NEW.
    assert consumption["OLD", day[3]] == Decimal("15")
    series = {r[1]: r for r in got["meter_series"]}
    assert series["OLD"][3] == "NEW"  # the meter now reading into the series
    reading_events = [e for e in got["outbox"] if e[0].startswith("Reading")]
    assert len({e[2] for e in reading_events}) == len(reading_events)  # the re-upload published nothing twice
    assert got["unplaced_reads"] == []  # GHOST's readings were held, then placed
    ghost = [(r[2], r[3], r[6]) for r in got["series_points"] if r[1] == "GHOST"]
    assert ghost == [(day[1], 0, "failed"), (day[1], 1, "actual"), (day[2], 0, "failed"), (day[2], 1, "actual")]
    days = {(r[1], r[3]): r[5] for r in got["consumption_buckets"] if r[2] == "day"}
    assert sum(v for (s, _), v in days.items() if s == "WM-A") == Decimal("41")
