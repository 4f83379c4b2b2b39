"""WeChat template messages through a local HTTP server that plays the official-account API."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import httpx
import pytest
from notify.adapters.channels import WechatChannel, WechatConfig, WechatTokens
from notify.core.model import Channel, DeliveryOutcome, Message

from ..conftest import Answer, HttpServer, Received

pytestmark = pytest.mark.integration

APP_ID = "wx5f2c8d1e9a7b3c40"
APP_SECRET = "3f9d2a7c1e5b8d0f4a6c2e9b7d1f3a5c"
KEY = "7c1f0b2e-3d4a-4b5c-8d6e-9f0a1b2c3d4e"


@dataclass
class OfficialAccount:
    """WeChat's side: issues tokens for the right secret, refuses retired ones, answers per openid."""

    issued: list[str] = field(default_factory=list)
    retired: set[str] = field(default_factory=set)
    errcodes: dict[str, int] = field(default_factory=dict)
    messages: list[dict[str, object]] = field(default_factory=list)

    def __call__(self, request: Received) -> Answer:
        if request.path == "/cgi-bin/token":
            assert request.query["grant_type"] == "client_credential"
            if (request.query.get("appid"), request.query.get("secret")) != (APP_ID, APP_SECRET):
                # WeChat's real errmsg does not echo the secret; this one does, to prove it is blanked.
                return reply({"errcode": 40125, "errmsg": f"invalid appsecret {request.query.get('secret')}"})
            token = f"ACCESS-TOKEN-{len(self.issued) + 1}-{'x' * 20}"
            self.issued.append(token)
            return reply({"access_token": token, "expires_in": 7200})
        assert request.path == "/cgi-bin/message/template/send"
        token = request.query.get("access_token", "")
        if token not in self.issued or token in self.retired:
            return reply({"errcode": 42001, "errmsg": f"access_token expired {token} rid: 6567-1"})
        message = json.loads(request.body)
        code = self.errcodes.get(message["touser"], 0)
        if code:
            return reply({"errcode": code, "errmsg": "refused rid: 6567-2"})
        self.messages.append(message)
        return reply({"errcode": 0, "errmsg": "ok", "msgid": 200228332 + len(self.messages)})

    def sends(self, server: HttpServer) -> list[Received]:
        return server.on("/cgi-bin/message/template/send")


def reply(document: dict[str, object]) -> Answer:
    return Answer(200, json.dumps(document).encode())


@pytest.fixture
def account(http_server: HttpServer) -> OfficialAccount:
    wechat = OfficialAccount()
    http_server.respond = wechat
    return wechat


def channel(http_server: HttpServer, http: httpx.AsyncClient, secret: str = APP_SECRET) -> WechatChannel:
    config = WechatConfig(base_url=http_server.base_url, app_id=APP_ID, app_secret=secret, timeout_s=5)
    return WechatChannel(config, http, WechatTokens())


def receipt(openid: str = "oXq1f5Zr9k2T3uVw8yA4bC6dE7gH") -> Message:
    return Message(channel=Channel.WECHAT, address=openid, subject="缴费成功", text="您已成功缴费 100.00 元",
                   template_id="TPL-receipt-01", parameters={"first": "缴费成功", "amount": "100.00 元"},
                   idempotency_key=KEY)


def leaks(outcome: DeliveryOutcome, account: OfficialAccount) -> bool:
    return any(secret in outcome.provider_answer for secret in (APP_SECRET, *account.issued))


async def test_the_token_is_fetched_once_and_kept_across_sends(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount) -> None:
    wechat = channel(http_server, http)

    first = await wechat.send(receipt())
    second = await wechat.send(receipt())

    assert first.delivered and second.delivered
    assert (first.provider_message_id, second.provider_message_id) == ("200228333", "200228334")
    assert len(http_server.on("/cgi-bin/token")) == 1
    assert account.messages[0] == {
        "touser": "oXq1f5Zr9k2T3uVw8yA4bC6dE7gH", "template_id": "TPL-receipt-01",
        "data": {"first": {"value": "缴费成功"}, "amount": {"value": "100.00 元"}},
        "client_msg_id": KEY.replace("-", "")}
    assert not leaks(first, account) and not leaks(second, account)


async def test_an_expired_token_is_refreshed_once_and_the_send_succeeds(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount) -> None:
    wechat = channel(http_server, http)
    await wechat.send(receipt())
    account.retired.add(account.issued[0])  # WeChat expired it early, e.g. another server fetched one

    outcome = await wechat.send(receipt())

    assert outcome.delivered
    assert len(http_server.on("/cgi-bin/token")) == 2
    assert [r.query["access_token"] for r in account.sends(http_server)] == [account.issued[0]] * 2 + [
        account.issued[1]]
    assert not leaks(outcome, account)


async def test_a_token_refused_even_after_the_refresh_is_retried_later(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount) -> None:
    account.retired.update(f"ACCESS-TOKEN-{n}-{'x' * 20}" for n in range(1, 10))

    outcome = await channel(http_server, http).send(receipt())

    assert not outcome.delivered and outcome.retryable
    assert "42001" in outcome.provider_answer
    assert len(http_server.on("/cgi-bin/token")) == 2
    assert not leaks(outcome, account)


@pytest.mark.parametrize("errcode", [43004, 40003])
async def test_a_follower_who_left_or_a_bad_openid_is_not_retried(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount, errcode: int) -> None:
    account.errcodes["o-gone"] = errcode

    outcome = await channel(http_server, http).send(receipt("o-gone"))

    assert not outcome.delivered and not outcome.retryable
    assert f"errcode {errcode}" in outcome.provider_answer
    assert not leaks(outcome, account)


@pytest.mark.parametrize("errcode", [-1, 45009])
async def test_a_busy_or_rate_limited_wechat_is_retried(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount, errcode: int) -> None:
    account.errcodes["o-busy"] = errcode

    outcome = await channel(http_server, http).send(receipt("o-busy"))

    assert not outcome.delivered and outcome.retryable
    assert not leaks(outcome, account)


async def test_a_wrong_app_secret_is_refused_and_appears_neither_in_the_outcome_nor_the_logs(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount,
        caplog: pytest.LogCaptureFixture) -> None:
    wrong = "0000wrong0secret0000aaaabbbbcccc"
    caplog.set_level(logging.DEBUG)

    outcome = await channel(http_server, http, secret=wrong).send(receipt())

    assert not outcome.delivered and not outcome.retryable
    assert "40125" in outcome.provider_answer
    assert wrong not in outcome.provider_answer
    assert http_server.on("/cgi-bin/token"), "the token endpoint was asked"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/cgi-bin/token" in logged, "httpx logged the request"
    assert wrong not in logged


async def test_neither_secret_nor_token_is_logged_on_a_successful_send(
        http_server: HttpServer, http: httpx.AsyncClient, account: OfficialAccount,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    outcome = await channel(http_server, http).send(receipt())

    assert outcome.delivered
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/cgi-bin/message/template/send" in logged
    assert APP_SECRET not in logged and account.issued[0] not in logged
