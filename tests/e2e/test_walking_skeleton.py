"""A reading posted to ingest travels through Kafka to vee and on to billing — real broker, real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from amiflow_runtime.testing import auth_headers, unique

pytestmark = pytest.mark.e2e


def poll(fetch: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the platform did not get there within the timeout")
        time.sleep(0.3)


def register_meter(platform: Any, tenant: str, meter: str) -> None:
    """Put the meter in ingest's registry; VEE learns it from amiflow.registry.devices."""
    response = httpx.post(f"{platform.api['ingest']}/v1/meters", headers=auth_headers(tenant), json={
        "meter_id": meter, "utility": "water", "profile": "cjt188-water-2004", "bus_address": "00000012345678",
        "unit": "m3", "dial_count": 8, "schedule": "hourly"})
    assert response.status_code == 201, response.text


def post_reading(platform: Any, tenant: str, meter: str, at: str, value: str) -> httpx.Response:
    return httpx.post(f"{platform.api['ingest']}/v1/readings", headers=auth_headers(tenant), json={
        "meter_id": meter, "utility": "water", "measured_at": at,
        "registers": [{"register": "total", "value": value, "unit": "m3"}],
    })


def test_posted_reading_comes_out_validated_and_reaches_billing(platform: Any) -> None:
    tenant, meter = unique("market"), unique("WM")
    register_meter(platform, tenant, meter)
    first = post_reading(platform, tenant, meter, "2026-11-21T08:00:00+08:00", "100.500")
    second = post_reading(platform, tenant, meter, "2026-11-21T09:00:00+08:00", "101.250")
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert second.status_code == 202

    def validated() -> list[dict[str, Any]]:
        rows = httpx.get(f"{platform.api['vee']}/v1/meters/{meter}/readings",
                         headers=auth_headers(tenant)).json()
        return rows if len(rows) == 2 else []

    newest, oldest = poll(validated)
    assert (newest["status"], newest["version"]) == ("actual", 1)
    assert Decimal(newest["consumption"]) == Decimal("0.75")
    assert newest["measured_at"] == "2026-11-21T01:00:00Z"
    assert oldest["consumption"] is None  # the first reading is the baseline

    def billed() -> dict[str, Any] | None:
        response = httpx.get(f"{platform.api['billing']}/v1/meters/{meter}/consumption",
                             headers=auth_headers(tenant))
        body = response.json() if response.status_code == 200 else None
        return body if body and body["readings"] == 2 else None

    projection = poll(billed)
    assert Decimal(projection["total_consumption"]) == Decimal("0.75")
    # Another tenant sees nothing of it.
    other = httpx.get(f"{platform.api['billing']}/v1/meters/{meter}/consumption", headers=auth_headers("x"))
    assert other.status_code == 404


def test_repeated_post_is_answered_as_duplicate_and_billed_once(platform: Any) -> None:
    tenant, meter = unique("market"), unique("WM")
    register_meter(platform, tenant, meter)
    post_reading(platform, tenant, meter, "2026-11-21T08:00:00+00:00", "5")
    accepted = post_reading(platform, tenant, meter, "2026-11-21T10:00:00+00:00", "7.5")
    again = post_reading(platform, tenant, meter, "2026-11-21T10:00:00+00:00", "7.50")
    assert again.status_code == 200
    assert again.json() == {"event_id": accepted.json()["event_id"], "status": "duplicate"}
    conflict = post_reading(platform, tenant, meter, "2026-11-21T10:00:00+00:00", "8")
    assert conflict.status_code == 409 and "different reading" in conflict.json()["reason"]

    def billed() -> dict[str, Any] | None:
        response = httpx.get(f"{platform.api['billing']}/v1/meters/{meter}/consumption",
                             headers=auth_headers(tenant))
        body = response.json() if response.status_code == 200 else None
        return body if body and Decimal(body["total_consumption"]) >= Decimal("2.5") else None

    projection = poll(billed)
    time.sleep(2)  # a duplicate would show up by now
    projection = billed()
    # 08:00 → 10:00: the 09:00 gap is estimated and the rest actual; 2.5 m3 in all, counted once.
    assert projection is not None and Decimal(projection["total_consumption"]) == Decimal("2.5")


@pytest.mark.parametrize(("body", "reason"), [
    ({"meter_id": "M1", "utility": "water", "measured_at": "2026-11-21T08:00:00",
      "registers": [{"register": "total", "value": "1", "unit": "m3"}]}, "timezone"),
    ({"meter_id": "M1", "utility": "water", "measured_at": "2026-11-21T08:00:00Z",
      "registers": [{"register": "total", "value": "1", "unit": "kWh"}]}, "unit"),
    ({"meter_id": "M1", "utility": "steam", "measured_at": "2026-11-21T08:00:00Z",
      "registers": [{"register": "total", "value": "1", "unit": "m3"}]}, "utility"),
    ({"meter_id": "M1", "utility": "water", "measured_at": "2099-01-01T00:00:00Z",
      "registers": [{"register": "total", "value": "1", "unit": "m3"}]}, "ahead"),
])
def test_bad_reading_gets_422_with_a_reason(platform: Any, body: dict[str, Any], reason: str) -> None:
    response = httpx.post(f"{platform.api['ingest']}/v1/readings", json=body, headers=auth_headers())
    assert response.status_code == 422
    assert reason in response.text.lower()


def test_malformed_json_gets_422(platform: Any) -> None:
    response = httpx.post(f"{platform.api['ingest']}/v1/readings", content=b"{not json",
                          headers={"content-type": "application/json", **auth_headers()})
    assert response.status_code == 422
    assert "json" in response.text.lower()


async def test_garbage_on_a_topic_is_dead_lettered_and_the_pipeline_keeps_flowing(platform: Any) -> None:
    meter, tenant = unique("WM"), unique("market")
    garbage = b"\x68\x10\xaa garbage frame for " + meter.encode()
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("amiflow.ingest.readings", garbage, key=meter.encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("amiflow.dlq.vee", bootstrap_servers=platform.bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    dead = []
    try:
        deadline = time.monotonic() + 60
        while not dead and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            dead = [m for ms in batches.values() for m in ms if m.key == meter.encode()]
    finally:
        await consumer.stop()
    assert dead, "the malformed record never reached amiflow.dlq.vee"
    assert dead[0].value == garbage
    assert dict(dead[0].headers)["dlq.kind"] == b"undecodable"
    # vee is still consuming: a good reading for the same meter (same partition) gets through.
    await asyncio.to_thread(register_meter, platform, tenant, meter)
    await asyncio.to_thread(post_reading, platform, tenant, meter, "2026-11-21T08:00:00Z", "1")
    rows = await asyncio.to_thread(poll, lambda: httpx.get(
        f"{platform.api['vee']}/v1/meters/{meter}/readings", headers=auth_headers(tenant)).json())
    assert rows[0]["status"] == "actual"


def test_a_reading_of_an_unknown_meter_is_failed_visibly_and_never_billed(platform: Any) -> None:
    tenant, meter = unique("market"), unique("NOPE")
    assert post_reading(platform, tenant, meter, "2026-11-21T08:00:00Z", "3").status_code == 202
    rows = poll(lambda: httpx.get(f"{platform.api['vee']}/v1/meters/{meter}/readings",
                                  headers=auth_headers(tenant)).json())
    assert rows[0]["status"] == "failed" and rows[0]["checks"] == ["unknown_meter"]
    billed = httpx.get(f"{platform.api['billing']}/v1/meters/{meter}/consumption", headers=auth_headers(tenant))
    assert billed.status_code == 404 or Decimal(billed.json()["total_consumption"]) == 0


def test_every_process_reports_health_and_metrics(platform: Any) -> None:
    for url in (*platform.api.values(), *platform.ops.values()):
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
        assert httpx.get(f"{url}/readyz").status_code == 200
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.status_code == 200, url
        assert "amiflow_" in metrics.text, url
    metrics = httpx.get(f"{platform.ops['billing']}/metrics").text
    assert "amiflow_events_handled_total" in metrics
    # A Faust worker reports its lag per partition once it applied a batch; an API its requests by route.
    post_reading(platform, unique("lag"), unique("WM"), "2026-11-21T08:00:00+08:00", "1")
    poll(lambda: "amiflow_consumer_lag{" in httpx.get(f"{platform.ops['vee']}/metrics").text)
    requests = httpx.get(f"{platform.api['ingest']}/metrics").text
    assert 'amiflow_http_requests_total{method="POST",route="/v1/readings",status="202"}' in requests
