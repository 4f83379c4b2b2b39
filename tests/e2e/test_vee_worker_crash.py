"""Killing the VEE worker mid-stream and starting it again loses no reading and duplicates none:
every slot of the read model holds exactly one first version, and every ReadingValidated event id
on the topic is the one the read model recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import create_database, unique
from amiflow_schemas import decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.readings import ReadingReceived
from amiflow_schemas.events.registry import ReadSchedule, ScheduleKind
from amiflow_schemas.examples import example_payloads

pytestmark = pytest.mark.e2e

METERS, HOURS = 12, 30
START = datetime(2026, 11, 1, tzinfo=UTC)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "vee.main", "worker"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


async def publish_fleet(bootstrap: str, tenant: str, meters: list[str]) -> None:
    defined = example_payloads()["MeterDefined"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for meter_id in meters:
            meter = defined.meter.model_copy(update={
                "meter_id": meter_id, "replaces_meter_id": None, "installed_at": None, "installation_reading": None,
                "schedule": ReadSchedule(kind=ScheduleKind.HOURLY, at_local=None, jitter_s=0), "dial_count": 8})
            payload = defined.model_copy(update={"meter": meter, "device_key": f"{tenant}/meter/{meter_id}"})
            await _send(producer, "amiflow.registry.devices", payload, tenant, payload.device_key, START)
        await asyncio.sleep(3)  # registry first, as in the field
        for hour in range(HOURS):
            for n, meter_id in enumerate(meters):
                at = START + timedelta(hours=hour)
                reading = ReadingReceived.model_validate({
                    "meter_id": meter_id, "utility": "water", "measured_at": at, "source": "dtu",
                    "gateway_id": "DTU-1",
                    "registers": [{"register": "total", "value": str(100 + hour * (n + 1)), "unit": "m3"}]})
                await _send(producer, "amiflow.ingest.readings", reading, tenant, meter_id, at)
    finally:
        await producer.stop()


async def _send(producer: AIOKafkaProducer, topic: str, payload: Any, tenant: str, key: str, at: datetime) -> None:
    envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key=key, occurred_at=at,
                            recorded_at=at, producer="test")
    await producer.send(topic, encode_event(envelope), key=key.encode(), headers=envelope_headers(envelope))


async def validated_on_topic(bootstrap: str, tenant: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer("amiflow.vee.readings", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(180):
            while len({(e.payload.meter_id, e.payload.measured_at) for e in found}) < expected:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    found += [e for e in map(lambda m: decode_event(m.value), messages) if e.tenant_id == tenant]
    finally:
        await consumer.stop()
    return found


def test_a_killed_and_restarted_vee_worker_misses_nothing_and_duplicates_nothing(
        own_broker: str, postgres_admin_url: str, tmp_path: Path) -> None:
    # Its own broker: on the session's, the platform's VEE would publish every slot under the same name-based
    # id as this worker, and hide a reading this worker lost.
    kafka_bootstrap = own_broker
    tenant = unique("crash")
    meters = [f"WM-{n:03d}" for n in range(METERS)]
    ops_port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AMIFLOW_ENV": "test",
           "VEE_DATABASE_URL": asyncio.run(create_database(postgres_admin_url, "veecrash")),
           "VEE_OPS_PORT": str(ops_port), "VEE_FAUST_APP_ID": f"vee-{tenant}", "AMIFLOW_DATA_DIR": str(tmp_path),
           "VEE_ESTIMATION_INTERVAL_S": "3600"}
    log = tmp_path / "vee-worker.log"
    worker = start_worker(env, log)
    try:
        asyncio.run(publish_fleet(kafka_bootstrap, tenant, meters))
        _wait_for_some_points(env)
        worker.send_signal(signal.SIGKILL)  # no goodbye: mid-stream, transactions and commits cut off
        worker.wait(30)
        worker = start_worker(env, log)
        slots = METERS * HOURS
        events = asyncio.run(validated_on_topic(kafka_bootstrap, tenant, slots))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    firsts = [e for e in events if e.event_type == "ReadingValidated"]
    by_slot = Counter((e.payload.meter_id, e.payload.measured_at) for e in {e.event_id: e for e in firsts}.values())
    assert len(by_slot) == slots, "a reading went missing"
    assert max(by_slot.values()) == 1, "a slot was validated twice under different event ids"


def _wait_for_some_points(env: dict[str, str]) -> None:
    # Kill only once the worker is busy: some slots done, most still to do.
    import time

    deadline = time.monotonic() + 120
    ops = f"http://127.0.0.1:{env['VEE_OPS_PORT']}/metrics"
    while time.monotonic() < deadline:
        try:
            text_metrics = httpx.get(ops, timeout=2).text
        except httpx.HTTPError:
            text_metrics = ""
        handled = [line for line in text_metrics.splitlines()
                   if line.startswith('amiflow_events_handled_total{consumer="vee.validation"')]
        if handled and float(handled[0].rsplit(" ", 1)[1]) >= 20:
            return
        time.sleep(0.2)
    raise AssertionError("the worker never got going")
