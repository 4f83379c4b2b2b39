"""Local servers the channel adapters talk to: an SMTP server (aiosmtpd) and an HTTP server (uvicorn
in the test's event loop) that record what they receive and answer as each test scripts them."""

from __future__ import annotations

import asyncio
import email
import email.policy
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from amiflow_runtime.localkafka import free_port


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    mail: EmailMessage


@dataclass
class MailServer:
    """Accepts every recipient except those the test refuses, by address, with an SMTP reply line."""

    refusals: dict[str, str] = field(default_factory=dict)
    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refusals:
            return self.refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), mail))
        return "250 2.0.0 queued"


@pytest.fixture
def smtp_server() -> Iterator[tuple[MailServer, int]]:
    """A real SMTP server on 127.0.0.1 and its port."""
    handler = MailServer()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@dataclass(frozen=True)
class Received:
    """One request as the HTTP server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0


Responder = Callable[[Received], Answer | Awaitable[Answer]]


@dataclass
class HttpServer:
    """Records every request and answers with what ``respond`` says (200 and an empty body unless set)."""

    base_url: str
    received: list[Received] = field(default_factory=list)
    respond: Responder = lambda request: Answer(200)

    def on(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            part = await receive()
            body += part.get("body", b"")
            if not part.get("more_body"):
                break
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request = Received(scope["method"], scope["path"], query, headers, body)
        self.received.append(request)
        answer = self.respond(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(b"content-type", answer.content_type.encode())]})
        await send({"type": "http.response.body", "body": answer.body})


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    """A real HTTP server on 127.0.0.1, served from the test's own event loop."""
    port = free_port()
    app = HttpServer(base_url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           timeout_graceful_shutdown=1))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the test HTTP server did not start"
        await asyncio.sleep(0.01)
    try:
        yield app
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
