"""Calling an app in-process as a client would: its whole middleware stack, authentication and audit included.

The audit trail uses it to read the state an undo will need just before an action, and to perform the
compensating request of an undo with the undoer's own token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.types import ASGIApp, Message, Scope


async def call_app(app: ASGIApp, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes = b"",
                   *, client: Any = None, state: dict[str, Any] | None = None) -> tuple[int, list[Any], bytes]:
    """Call `app` in-process as a client would (middleware, authentication and audit included)."""
    parts = urlsplit(path)
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(parts.path), "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": tuple(client) if client else None, "server": ("amiflow", 80),
        "state": state if state is not None else {},
    }
    sent, answered = False, asyncio.Event()
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # like a client that stays connected until the whole answer is in
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), answer
