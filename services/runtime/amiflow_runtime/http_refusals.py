"""What every API refuses before a route's own rules, and how it says so: bodies over the size limit (413),
callers without a valid token or the right to call (401/403, from http.caller_of), requests that do not
fit the route or carry text no database column can hold (422). REFUSAL_DOCS puts them in every route's
OpenAPI responses, so clients (and schemathesis) know each answer's shape.

The body limit is a setting (AMIFLOW_HTTP_MAX_BODY_BYTES, default 1 MiB); a route that takes files
declares a larger allowance with ``allows_body``. A body whose Content-Length is over the limit is
refused before any of it is read; one sent without a length is counted as it streams and refused once
it passes the limit, so a client cannot make a service buffer an unbounded body. (FastAPI's own
``max_body_size`` answers a declared oversize with a bare text/plain 413, whatever the app's handlers
say, hence this middleware.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amiflow_runtime.metrics import HTTP_REJECTED

MAX_BODY_KEY = "x-amiflow-max-body-bytes"
_TENANT_ID = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,64}")  # amiflow_schemas.primitives.Identifier, X-Tenant-Id's length
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class Refusal(BaseModel):
    problem: str
    reason: str


class Refused(BaseModel):
    """The body of a refusal: a problem code a client can branch on and a reason a person can read."""

    detail: Refusal


class InvalidField(BaseModel):
    location: str
    reason: str
    type: str


class InvalidRequest(BaseModel):
    """The body of a 422 for a request that does not fit the route's parameters or body model."""

    detail: str
    errors: list[InvalidField]


class Unreadable(BaseModel):
    """The body of a 400 for a body FastAPI cannot parse at all (JSON that is not UTF-8, a broken form)."""

    detail: str


# Added to every service route by create_app; a route's own entry for a status replaces this one.
REFUSAL_DOCS: dict[int | str, dict[str, Any]] = {
    400: {"model": Unreadable, "description": "The body cannot be parsed as its content type"},
    401: {"model": Refused, "description": "No valid bearer token"},
    403: {"model": Refused, "description": "The token does not allow this call, or names another tenant"},
    413: {"model": Refused, "description": "The body is larger than the route accepts"},
    422: {"model": InvalidRequest | Refused,
          "description": "The request is not valid: each error says where and why, or the refusal says why"},
}


def allows_body(max_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` of a route that accepts bodies larger than the service's limit (a file upload)."""
    return {MAX_BODY_KEY: max_bytes}


def too_large(limit: int) -> HTTPException:
    """The 413 refusal of a body over ``limit`` bytes."""
    reason = f"the body is larger than the {limit} bytes this route accepts"
    return HTTPException(413, detail={"problem": "too_large", "reason": reason})


class BodyLimit:
    """ASGI middleware: refuses request bodies over the route's limit (``default`` unless the route allows
    more) with 413 instead of reading them."""

    def __init__(self, app: ASGIApp, default: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        limit: int | None = None

        async def limited() -> Message:
            # Routing is done by the time anyone asks for the body, so the route's allowance is known.
            nonlocal received, limit
            if limit is None:
                limit = self._limit_of(scope)
                declared = _content_length(scope)
                if declared is not None and declared > limit:
                    raise _refused(scope, limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _refused(scope, limit)
            return message

        try:
            await self.app(scope, limited, send)
        except HTTPException as exc:  # raised where no route's handlers answer it, e.g. in a middleware
            if exc.status_code != 413:
                raise
            await JSONResponse({"detail": exc.detail}, status_code=413)(scope, receive, send)

    def _limit_of(self, scope: Scope) -> int:
        allowance = (getattr(scope.get("route"), "openapi_extra", None) or {}).get(MAX_BODY_KEY)
        return allowance if isinstance(allowance, int) else self.default


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


def _refused(scope: Scope, limit: int) -> HTTPException:
    HTTP_REJECTED.labels(getattr(scope.get("route"), "path", "unknown"), "413").inc()
    return too_large(limit)


async def storable_text_only(request: Request) -> None:
    """A dependency refusing (422) text a service would store but cannot: NUL characters and lone UTF-16
    surrogates in the path, the query or a JSON body, and an X-Tenant-Id that is no tenant id. Without it
    they fail deep in the database (500), or in the audit trail first, which then refuses the call (503).
    It runs before the audit's attempt record, which FastAPI's own parameter checks do not."""
    tenant = request.headers.get("x-tenant-id")
    if tenant is not None and not _TENANT_ID.fullmatch(tenant):
        raise RequestValidationError([{"type": "tenant_id", "loc": ("header", "x-tenant-id"), "input": None,
                                       "msg": "a tenant id is 1-64 characters without spaces or control characters"}])
    places = [("path", name) for name, value in request.path_params.items() if _unstorable(str(value))]
    places += [("query", name) for name, value in request.query_params.multi_items()
               if _unstorable(name) or _unstorable(value)]
    if "json" in request.headers.get("content-type", ""):
        body = await request.body()  # FastAPI has read it already; this is its cached copy
        if b"\\u0000" in body or b"\\ud" in body.lower():  # escapes only: raw, they are not JSON
            try:
                places += [("body", *path) for path in _unstorable_paths(json.loads(body))]
            except ValueError:
                pass  # not JSON: FastAPI's own parsing answers that
    if places:
        raise RequestValidationError([{"type": "unstorable_text", "loc": place, "input": None,
                                       "msg": "NUL characters and lone surrogates are not accepted"}
                                      for place in places])


def _unstorable(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text)


def _unstorable_paths(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(document, str):
        if _unstorable(document):
            yield path
    elif isinstance(document, dict):
        for key, value in document.items():
            if _unstorable(key):
                yield (*path, key)
            yield from _unstorable_paths(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _unstorable_paths(value, (*path, index))
