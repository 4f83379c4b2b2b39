"""SMS through a local HTTP server standing in for the provider."""

from __future__ import annotations

import json

import httpx
import pytest
from amiflow_runtime.localkafka import free_port
from notify.adapters.channels import SmsChannel, SmsConfig
from notify.core.model import Channel, Message

from ..conftest import Answer, HttpServer, Received

pytestmark = pytest.mark.integration

API_KEY = "sms-api-key-7f3e9c1b2d"
KEY = "0d6c3f0e-9a51-4f7e-8a8e-2b1f6a9c7d10"


def channel(http: httpx.AsyncClient, endpoint: str, timeout_s: float = 5) -> SmsChannel:
    config = SmsConfig(endpoint=endpoint, api_key=API_KEY, api_key_header="X-Sms-Key", sign_name="滨江水务",
                       timeout_s=timeout_s)
    return SmsChannel(config, http)


def low_balance() -> Message:
    return Message(channel=Channel.SMS, address="+8613800138000", subject="余额不足",
                   text="您的水费余额仅剩 8.20 元", template_id="SMS_302510045",
                   parameters={"account": "1001", "amount": "8.20"}, idempotency_key=KEY)


def answering(status: int, body: object = None) -> Answer:
    return Answer(status, json.dumps(body).encode() if body is not None else b"")


async def test_an_accepted_sms_is_delivered_with_the_providers_message_id(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: answering(200, {"message_id": "sms-20261121-0001", "code": "OK"})

    outcome = await channel(http, f"{http_server.base_url}/v1/sms").send(low_balance())

    assert outcome.delivered and outcome.provider_message_id == "sms-20261121-0001"
    [request] = http_server.received
    assert (request.method, request.path) == ("POST", "/v1/sms")
    assert json.loads(request.body) == {"phone": "+8613800138000", "template_id": "SMS_302510045",
                                        "params": {"account": "1001", "amount": "8.20"}, "sign_name": "滨江水务"}
    assert request.headers["x-sms-key"] == API_KEY
    assert request.headers["idempotency-key"] == KEY
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_provider_fault_or_rate_limit_is_retried(
        http_server: HttpServer, http: httpx.AsyncClient, status: int) -> None:
    http_server.respond = lambda request: answering(status, {"code": "Busy"})

    outcome = await channel(http, http_server.base_url).send(low_balance())

    assert not outcome.delivered and outcome.retryable
    assert str(status) in outcome.provider_answer


async def test_a_refused_number_is_not_retried_and_the_answer_never_shows_the_key(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    def echo_headers(request: Received) -> Answer:
        return answering(400, {"code": "isv.MOBILE_NUMBER_ILLEGAL", "seen_headers": request.headers})
    http_server.respond = echo_headers

    outcome = await channel(http, http_server.base_url).send(low_balance())

    assert not outcome.delivered and not outcome.retryable
    assert "isv.MOBILE_NUMBER_ILLEGAL" in outcome.provider_answer
    assert API_KEY not in outcome.provider_answer


async def test_an_acceptance_without_a_message_id_is_not_sent_again(
        http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: answering(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL"})

    outcome = await channel(http, http_server.base_url).send(low_balance())

    assert not outcome.delivered and not outcome.retryable
    assert "without a message id" in outcome.provider_answer


async def test_a_provider_slower_than_the_timeout_is_retried(http_server: HttpServer, http: httpx.AsyncClient) -> None:
    http_server.respond = lambda request: Answer(200, b'{"message_id": "late"}', delay_s=1.0)

    outcome = await channel(http, http_server.base_url, timeout_s=0.2).send(low_balance())

    assert not outcome.delivered and outcome.retryable
    assert "no answer within 0.2 s" in outcome.provider_answer


async def test_a_provider_that_is_down_is_retried(http: httpx.AsyncClient) -> None:
    outcome = await channel(http, f"http://127.0.0.1:{free_port()}/v1/sms").send(low_balance())

    assert not outcome.delivered and outcome.retryable
    assert "unreachable" in outcome.provider_answer
