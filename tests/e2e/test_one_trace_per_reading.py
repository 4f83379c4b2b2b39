"""One reading, one trace: the W3C trace context rides in the Kafka headers (and the outbox rows) from
ingest's HTTP request through VEE and billing to notify, and every process exports its spans over
OTLP/HTTP to the receiver the session's platform was started with."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from amiflow_runtime.testing import auth_headers, unique
from ingest.simulator.demo import TARIFFS
from opentelemetry.trace import SpanKind

from .otlp import ReceivedSpan

pytestmark = pytest.mark.e2e

SERVICES = ("amiflow-ingest", "amiflow-vee", "amiflow-billing", "amiflow-notify")


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code in (200, 201, 202), f"{answer.request.url}: {answer.status_code} {answer.text[:400]}"
    return answer.json()


def open_account(http: httpx.Client, platform: Any, meter: str) -> None:
    """The meter in the registry and an account paying for it from now on (with no money on it)."""
    api = platform.api
    _ok(http.post(f"{api['ingest']}/v1/meters", json={
        "meter_id": meter, "utility": "water", "profile": "cjt188-water-2004", "bus_address": "00000012345678",
        "unit": "m3", "dial_count": 8, "schedule": "hourly"}))
    water = TARIFFS[next(u for u in TARIFFS if u.value == "water")]
    year = datetime.now(UTC).year
    _ok(http.post(f"{api['billing']}/v1/tariffs", json={
        **water, "utility": "water", "version_id": f"{water['tariff_id']}-{year}",
        "effective_from": datetime(year - 1, 12, 31, tzinfo=UTC).isoformat()}))
    account = f"ACC-{meter}"
    _ok(http.post(f"{api['billing']}/v1/accounts", json={
        "account_id": account, "customer_id": f"C-{meter}", "customer_kind": "household"}))
    _ok(http.post(f"{api['billing']}/v1/accounts/{account}/meters", json={
        "meter_id": meter, "utility": "water", "tariff_id": water["tariff_id"]}))


def post_reading(http: httpx.Client, platform: Any, meter: str, at: datetime, value: str) -> str:
    body = _ok(http.post(f"{platform.api['ingest']}/v1/readings", json={
        "meter_id": meter, "utility": "water", "measured_at": at.isoformat(),
        "registers": [{"register": "total", "value": value, "unit": "m3"}]}))
    return str(body["event_id"])


def baseline_validated(http: httpx.Client, platform: Any, meter: str, at: datetime) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        points = _ok(http.get(f"{platform.api['vee']}/v1/meters/{meter}/readings",
                              params={"from": at.isoformat(), "to": (at + timedelta(minutes=1)).isoformat()}))
        if any(point["status"] == "actual" for point in points):  # a held reading shows as failed until placed
            return
        time.sleep(0.2)
    raise AssertionError(f"VEE never validated {meter}'s baseline reading at {at}")


def consumer_span(platform: Any, service: str, event_type: str, trace_id: str) -> ReceivedSpan | None:
    return next((s for s in platform.traces.trace(trace_id) if s.service == service and s.kind ==
                 SpanKind.CONSUMER.value + 1 and s.name.endswith(f" {event_type}")), None)


def balance_span(platform: Any, trace_id: str) -> ReceivedSpan | None:
    # The account holds no money, so the charge takes its balance low or below zero: billing emits the balance
    # event in the charge's transaction, and notify reads it. (Notify passes over the ChargeApplied itself, unread:
    # a charge calls for no notification.)
    return next((span for event_type in ("BalanceDepleted", "BalanceLow")
                 if (span := consumer_span(platform, "amiflow-notify", event_type, trace_id))), None)


def test_a_reading_is_one_trace_from_ingest_through_vee_and_billing_to_notify(platform: Any) -> None:
    tenant, meter = unique("trace"), unique("TRC")
    with httpx.Client(headers=auth_headers(tenant), timeout=30) as http:
        open_account(http, platform, meter)
        # The next two full hours: after the account opened, so the interval between them is billed.
        first = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        post_reading(http, platform, meter, first, "100.000")
        # VEE places the baseline first; the second reading's interval is the one billed. Waiting for it also
        # makes sure VEE knows the meter: a reading that comes before the registry's event is held, and
        # validated later in the registry event's trace — the race a fixed sleep lost on a loaded machine.
        baseline_validated(http, platform, meter, first)
        received = post_reading(http, platform, meter, first + timedelta(hours=1), "101.500")

    deadline = time.monotonic() + 120
    trace_id, notified_id = None, None
    while time.monotonic() < deadline:
        # VEE's consume span of the posted ReadingReceived carries its event id: that names the trace.
        found = platform.traces.find(**{"amiflow.event_id": received})
        trace_id = found[0].trace_id if found else None
        if trace_id and (notified := balance_span(platform, trace_id)):
            notified_id = notified.attributes.get("amiflow.event_id")
            break
        time.sleep(0.5)
    assert trace_id is not None, f"no span names the reading {received}; refused exports: {platform.traces.refused}"
    spans = platform.traces.trace(trace_id)
    seen = sorted({(s.service, s.name) for s in spans})
    assert notified_id is not None, f"notify never consumed the balance's change in this trace: {seen}"

    by_service = {service: [s for s in spans if s.service == service] for service in SERVICES}
    assert all(by_service.values()), {k: len(v) for k, v in by_service.items()}
    # The request that brought the reading in is the root; every hop's consumer span has a parent in the trace.
    [root] = [s for s in spans if not s.parent_span_id]
    assert root.service == "amiflow-ingest" and root.kind == SpanKind.SERVER.value + 1 and "/v1/readings" in root.name
    ids = {s.span_id for s in spans}
    hops = [consumer_span(platform, "amiflow-vee", "ReadingReceived", trace_id),
            consumer_span(platform, "amiflow-billing", "ReadingValidated", trace_id),
            balance_span(platform, trace_id)]
    assert all(hops), [(s.service, s.name) for s in spans]
    assert all(hop.parent_span_id in ids for hop in hops if hop)
    assert hops[0] and hops[0].attributes["amiflow.event_id"] == received
    assert hops[0].attributes["messaging.destination.name"] == "amiflow.ingest.readings"
