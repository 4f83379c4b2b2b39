"""What the HTTP channels (SMS, WeChat, webhooks) share: one bounded exchange, the reading of its
status, and the outcome of a request that got no answer at all."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx

from notify.adapters.channels.base import REDACTED, refused, retry_later
from notify.core.model import DeliveryOutcome

# An answer longer than this is not read further: the log keeps 500 chars, and a receiver that streams
# megabytes back must not cost the worker its memory.
REPLY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ProviderReply:
    """A provider's HTTP answer: the status and the first REPLY_LIMIT bytes of the body."""

    status: int
    body: bytes

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """A refusal that says "later" rather than "no": timeouts, rate limits and server faults."""
        return self.status in (408, 429) or self.status >= 500

    def json_object(self) -> dict[str, Any] | None:
        try:
            document = json.loads(self.body)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def summary(self) -> str:
        text = self.body.decode("utf-8", errors="replace").strip()
        return f"HTTP {self.status}: {text}" if text else f"HTTP {self.status}"


async def exchange(http: httpx.AsyncClient, method: str, url: str, *, timeout_s: float,
                   **request: Any) -> ProviderReply:
    """One request and its answer within ``timeout_s`` in all (httpx's own timeouts are per phase, so a
    server that drips its answer a byte at a time would otherwise hold the worker for ever).

    Raises TimeoutError, httpx.RequestError or httpx.InvalidURL when there is no answer."""
    async with asyncio.timeout(timeout_s):
        # Never follow a redirect: a signed body and a credential are for the URL that was configured.
        async with http.stream(method, url, timeout=timeout_s, follow_redirects=False, **request) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= REPLY_LIMIT:
                    break
            return ProviderReply(response.status_code, bytes(body[:REPLY_LIMIT]))


NO_ANSWER = (TimeoutError, httpx.RequestError, httpx.InvalidURL)


def unanswered(exc: BaseException, provider: str, timeout_s: float, *secrets: str) -> DeliveryOutcome:
    """The outcome of a request that got no HTTP answer: a bad URL is final, anything else may pass later."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return refused(f"{provider}: the URL cannot be requested ({exc})", *secrets)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return retry_later(f"{provider}: no answer within {timeout_s:g} s ({type(exc).__name__})", *secrets)
    return retry_later(f"{provider}: unreachable ({type(exc).__name__}: {exc})", *secrets)


# WeChat takes its app secret and access token in the query string, and httpx logs every request's URL
# at INFO: without this filter both would land in the service's logs.
_CREDENTIAL_PARAMETER = re.compile(r"((?:secret|access_token|appsecret)=)[^&\s\"']+", re.IGNORECASE)


class _HideCredentialParameters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        hidden = _CREDENTIAL_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
        if hidden != text:
            record.msg, record.args = hidden, None
        return True


def hide_credential_parameters(logger: logging.Logger) -> None:
    """Blank credential query parameters in every line ``logger`` writes (idempotent)."""
    if not any(isinstance(f, _HideCredentialParameters) for f in logger.filters):
        logger.addFilter(_HideCredentialParameters())


hide_credential_parameters(logging.getLogger("httpx"))
