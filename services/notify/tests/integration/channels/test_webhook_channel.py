"""Signed webhooks to a local HTTP server that verifies them as an integrator would."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.localkafka import free_port
from notify.adapters.channels import WebhookChannel, WebhookConfig
from notify.core.model import Channel, Message

from ..conftest import Answer, HttpServer, Received

pytestmark = pytest.mark.integration

SECRET = b"whsec-riverside-erp-5c2f8a1d9e7b"
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
KEY = "4e8a1c2b-5d6f-4a7b-9c0d-1e2f3a4b5c6d"
PAYLOAD = {"event_type": "BalanceLow", "account_id": "1001", "balance": "8.20", "currency": "CNY",
           "customer_name": "张伟"}


def verified(request: Received, secret: bytes = SECRET) -> bool:
    """The integrator's check, written from the documented scheme rather than from our code."""
    timestamp = request.headers["x-amiflow-timestamp"]
    expected = hmac.new(secret, f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["x-amiflow-signature"])


def webhooks(http: httpx.AsyncClient) -> WebhookChannel:
    return WebhookChannel(WebhookConfig(timeout_s=5, user_agent="amiflow-notify/test"), http, FrozenClock(NOW))


def balance_low(url: str) -> Message:
    return Message(channel=Channel.WEBHOOK, address=url, subject="BalanceLow", text="", payload=PAYLOAD,
                   idempotency_key=KEY)


async def test_a_delivered_webhook_is_signed_over_timestamp_and_body(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: Answer(204)

    outcome = await webhooks(http).send(balance_low(f"{http_server.base_url}/hooks/amiflow"), secret=SECRET)

    assert outcome.delivered and not outcome.retryable
    [request] = http_server.received
    assert verified(request)
    assert not verified(request, secret=b"another subscription's secret")
    assert request.headers["x-amiflow-timestamp"] == str(int(NOW.timestamp()))
    assert request.headers["x-amiflow-delivery"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "amiflow-notify/test"
    assert request.body == json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def test_a_receiver_failing_twice_gets_three_signed_deliveries_with_one_delivery_id(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    statuses = iter([500, 500, 200])
    http_server.respond = lambda request: Answer(next(statuses))
    channel, message = webhooks(http), balance_low(http_server.base_url)

    outcomes = [await channel.send(message, secret=SECRET) for _ in range(3)]

    assert [(o.delivered, o.retryable) for o in outcomes] == [(False, True), (False, True), (True, False)]
    assert all(verified(request) for request in http_server.received)
    assert {request.headers["x-amiflow-delivery"] for request in http_server.received} == {KEY}


async def test_a_subscription_that_is_gone_is_not_retried(http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: Answer(410, b'{"error": "unknown subscription"}')

    outcome = await webhooks(http).send(balance_low(http_server.base_url), secret=SECRET)

    assert not outcome.delivered and not outcome.retryable
    assert "410" in outcome.provider_answer and "gone" in outcome.provider_answer


@pytest.mark.parametrize(("status", "retryable"), [(408, True), (429, True), (503, True), (400, False),
                                                   (401, False), (301, False)])
async def test_statuses_other_than_success_decide_whether_to_try_again(
        http_server: HttpServer, http: httpx.AsyncClient, status: int, retryable: bool) -> None:
    http_server.respond = lambda request: Answer(status)

    outcome = await webhooks(http).send(balance_low(http_server.base_url), secret=SECRET)

    assert not outcome.delivered
    assert outcome.retryable is retryable
    assert len(http_server.received) == 1  # a redirect is not followed


async def test_a_receiver_that_is_down_or_too_slow_is_retried(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: Answer(200, delay_s=1.0)
    slow = WebhookChannel(WebhookConfig(timeout_s=0.2), http, FrozenClock(NOW))

    too_slow = await slow.send(balance_low(http_server.base_url), secret=SECRET)
    down = await webhooks(http).send(balance_low(f"http://127.0.0.1:{free_port()}/"), secret=SECRET)

    assert (too_slow.delivered, too_slow.retryable) == (False, True)
    assert (down.delivered, down.retryable) == (False, True)


async def test_the_plain_port_bound_to_a_secret_signs_with_it(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    outcome = await webhooks(http).signed_with(SECRET).send(balance_low(http_server.base_url))

    assert outcome.delivered
    assert verified(http_server.received[0])
    assert SECRET.decode() not in repr(webhooks(http).signed_with(SECRET))


async def test_an_answer_echoing_the_secret_is_blanked_and_cut_to_500_characters(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: Answer(400, b"bad signature for " + SECRET + b" " + b"x" * 2000)

    outcome = await webhooks(http).send(balance_low(http_server.base_url), secret=SECRET)

    assert SECRET.decode() not in outcome.provider_answer
    assert len(outcome.provider_answer) == 500
