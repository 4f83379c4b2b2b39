"""WeChat official-account template messages (模板消息) to a follower's openid.

    GET  {base}/cgi-bin/token?grant_type=client_credential&appid=…&secret=…
         → {"access_token": "…", "expires_in": 7200}
    POST {base}/cgi-bin/message/template/send?access_token=…
         {"touser": openid, "template_id": "…", "data": {"amount": {"value": "8.20"}},
          "client_msg_id": "…"}
         → {"errcode": 0, "errmsg": "ok", "msgid": 200228332}

The access token is cached per app id until ``expires_in`` less a margin: WeChat limits how often a
token may be fetched, and fetching one retires the previous within five minutes, so a fresh token per
message would both hit the limit and break other senders of the same account. ``client_msg_id`` (the
notification id) lets WeChat drop a repeat sent within ten minutes, e.g. after a timeout.

Neither the app secret nor a token is ever put in an outcome; httpx's request log lines have them
blanked (``http.hide_credential_parameters``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from notify.adapters.channels.base import WechatConfig, delivered, refused, retry_later
from notify.adapters.channels.http import NO_ANSWER, ProviderReply, exchange, unanswered
from notify.core.model import Channel, DeliveryOutcome, Message

TOKEN_INVALID = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
BUSY = frozenset({-1, 45009})  # system busy; API call limit reached
# Retire a token this long before WeChat says it expires (its overlap when a new one is fetched).
TOKEN_MARGIN_S = 300.0


@dataclass(frozen=True)
class _Token:
    value: str
    good_until: float


class WechatTokens:
    """Access tokens by app id. One instance should serve every tenant: two caches of the same
    official account would keep retiring each other's tokens."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, margin_s: float = TOKEN_MARGIN_S) -> None:
        self._monotonic = monotonic
        self._margin_s = margin_s
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, app_id: str, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The cached token of ``app_id``, or one ``fetch`` gets (once, however many sends are waiting)."""
        async with self._locks.setdefault(app_id, asyncio.Lock()):
            cached = self._tokens.get(app_id)
            if cached and cached.good_until > self._monotonic():
                return cached.value
            value, expires_in = await fetch()
            lifetime = max(expires_in - self._margin_s, expires_in / 2)
            self._tokens[app_id] = _Token(value, self._monotonic() + lifetime)
            return value

    def retire(self, app_id: str, value: str) -> None:
        """Forget ``value`` because WeChat refused it (unless another send has already replaced it)."""
        cached = self._tokens.get(app_id)
        if cached and cached.value == value:
            del self._tokens[app_id]


class _NoToken(Exception):
    def __init__(self, outcome: DeliveryOutcome) -> None:
        super().__init__(outcome.provider_answer)
        self.outcome = outcome


def client_msg_id(idempotency_key: str) -> str:
    """At most 32 characters: a UUID's hex, else a digest of the key."""
    try:
        return uuid.UUID(idempotency_key).hex
    except ValueError:
        return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def _errcode(reply: ProviderReply) -> tuple[int | None, str]:
    """WeChat's errcode and a summary for the log; None when the answer carries none."""
    answer = reply.json_object() or {}
    code = answer.get("errcode")
    if isinstance(code, int) and not isinstance(code, bool):
        return code, f"errcode {code}: {answer.get('errmsg', '')}"
    return None, reply.summary()


class WechatChannel:
    """One tenant's official account."""

    channel: Channel = Channel.WECHAT

    def __init__(self, config: WechatConfig, http: httpx.AsyncClient, tokens: WechatTokens | None = None) -> None:
        self.config = config
        self.http = http
        self.tokens = tokens or WechatTokens()
        self._base = str(config.base_url).rstrip("/")

    async def send(self, message: Message) -> DeliveryOutcome:
        secret = self.config.app_secret.get_secret_value()
        if not message.template_id:
            return refused("no WeChat template for this message")
        token = ""
        try:
            token = await self.tokens.get(self.config.app_id, self._fetch_token)
            outcome, code = await self._send_with(token, message)
            if code in TOKEN_INVALID:
                # Another process of this account may have fetched a newer token: refresh once, then give up.
                self.tokens.retire(self.config.app_id, token)
                token = await self.tokens.get(self.config.app_id, self._fetch_token)
                outcome, code = await self._send_with(token, message)
        except _NoToken as no_token:
            return no_token.outcome
        except NO_ANSWER as exc:
            return unanswered(exc, "WeChat", self.config.timeout_s, secret, token)
        return outcome

    async def _send_with(self, token: str, message: Message) -> tuple[DeliveryOutcome, int | None]:
        secret = self.config.app_secret.get_secret_value()
        request: dict[str, Any] = {"touser": message.address, "template_id": message.template_id,
                                   "data": {key: {"value": value} for key, value in message.parameters.items()}}
        if message.idempotency_key:
            request["client_msg_id"] = client_msg_id(message.idempotency_key)
        reply = await exchange(self.http, "POST", f"{self._base}/cgi-bin/message/template/send",
                               timeout_s=self.config.timeout_s, params={"access_token": token}, json=request)
        code, text = _errcode(reply)
        if code == 0:
            msgid = (reply.json_object() or {}).get("msgid")
            return delivered(text, None if msgid is None else str(msgid), secret, token), code
        if code in BUSY or code in TOKEN_INVALID or reply.transient or (code is None and reply.succeeded):
            # An unreadable 200 may have been sent: client_msg_id makes the next attempt harmless.
            return retry_later(text, secret, token), code
        return refused(text, secret, token), code  # 43004 not following, 40003 bad openid, 40037 bad template …

    async def _fetch_token(self) -> tuple[str, float]:
        secret = self.config.app_secret.get_secret_value()
        params = {"grant_type": "client_credential", "appid": self.config.app_id, "secret": secret}
        reply = await exchange(self.http, "GET", f"{self._base}/cgi-bin/token", timeout_s=self.config.timeout_s,
                               params=params)
        answer = reply.json_object() or {}
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if reply.succeeded and isinstance(token, str) and token and isinstance(expires_in, int | float):
            return token, float(expires_in)
        code, text = _errcode(reply)
        text = f"no access token: {text}"
        if code in BUSY or reply.transient:
            raise _NoToken(retry_later(text, secret))
        raise _NoToken(refused(text, secret))  # 40013 bad app id, 40125 bad secret, 40164 IP not allowed
