"""After the answer: the outcome of each audited action, and the calls refused or rejected before they ran.

`AuditCapture` is an ASGI middleware (create_app installs it): it counts and hashes a state-changing call's
body as it streams past (for record_attempt, audit_http.py), holds the answer until the outcome record —
status, the ids in the answer — is written, so a client never sees a success the trail lacks, and records
refused calls (401/403, any method) and state-changing calls answered before their handler could run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amiflow_runtime.audit import (
    STATE_CHANGING,
    UNAUTHENTICATED_TENANT,
    RecordKind,
    answered_record,
    outcome_record,
)
from amiflow_runtime.audit_db import AuditTrail
from amiflow_runtime.audit_http import (
    ATTEMPT_KEY,
    TAP_KEY,
    TENANT_KEY,
    BodyTap,
    route_template,
    trail_of,
    where_from,
)
from amiflow_runtime.audit_request import capped, ids_in_answer, redacted, who_of
from amiflow_runtime.auth import Principal, WrongTenant, principal_of

log = logging.getLogger("amiflow.audit")


async def _caller_after_the_fact(scope: Scope) -> tuple[Principal | None, dict[str, Any] | None]:
    """The caller of a call refused before the route knew them: verified if the token is valid, else what the
    token claims (marked unverified), else nothing."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None, None
    from amiflow_runtime.http import _verifier  # http.py installs this module: import at call time

    try:
        claims = await _verifier(Request(scope)).claims(token)
        try:
            return principal_of(claims, acting_tenant=headers.get("x-tenant-id")), None
        except WrongTenant:
            return principal_of(claims), {"requested_tenant": capped(headers.get("x-tenant-id"), 64)}
    except Exception:  # an invalid token: fall back to what it claims, for the record only
        log.debug("refused caller's token does not verify", exc_info=True)
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None, {"token": "not a JWT"}
    return None, {"unverified_subject": capped(str(claims.get("sub")), 200),
                  "unverified_tenant": capped(str(claims.get("tenant")), 64)}


def _answer_reason(body: bytes) -> str | None:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    if isinstance(detail, Mapping):
        return capped(str(detail.get("reason") or detail.get("problem") or ""), 500) or None
    return capped(str(detail), 500) if detail else None


def _what(scope: Scope, tap: BodyTap | None) -> dict[str, Any]:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    body = None
    if tap is not None and tap.size:  # a refused or rejected body is kept by size and hash only
        body = {"size_bytes": tap.size, "sha256": tap.digest.hexdigest(),
                "content_type": capped(headers.get("content-type"), 200)}
    return {"method": scope["method"], "route": route_template(scope), "path": scope["path"],
            "path_params": {k: str(v) for k, v in (scope.get("path_params") or {}).items()},
            "query": redacted(dict(_pairs(scope.get("query_string", b"")))), "body": body}


def _pairs(query_string: bytes) -> list[tuple[str, str]]:
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


async def _answered(scope: Scope, trail: AuditTrail, status: int, body: bytes) -> None:
    principal, claims = await _caller_after_the_fact(scope)
    kind = RecordKind.REFUSED if status in (401, 403) else RecordKind.REJECTED
    who = {**(who_of(principal) if principal else {"subject": "anonymous"}), **(claims or {})}
    tenant = principal.tenant if principal else UNAUTHENTICATED_TENANT
    await trail.record(answered_record(kind, tenant=tenant, who=who, where=where_from(scope, trail),
                                       what=_what(scope, scope["state"].get(TAP_KEY)), status=status,
                                       reason=_answer_reason(body)))


async def _after(scope: Scope, trail: AuditTrail, status: int, start: Message | None, body: bytes,
                 error: str | None = None) -> None:
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return  # no service route answered (404 for an unknown path, the docs): nothing was attempted
    attempt = scope["state"].get(ATTEMPT_KEY)
    if attempt is None:
        if status in (401, 403) or scope["method"] in STATE_CHANGING:
            await _answered(scope, trail, status, body)
        return
    await trail.record(outcome_record(tenant=scope["state"][TENANT_KEY], attempt_id=attempt, status=status,
                                      ids=_ids(start, body), error=error))


def _ids(start: Message | None, body: bytes) -> dict[str, list[str]]:
    try:
        ids = ids_in_answer(json.loads(body)) if body else {}
    except ValueError:
        ids = {}
    for name, value in (start or {}).get("headers", []):
        if name.lower() == b"location":
            ids["location"] = [capped(urlsplit(value.decode("latin-1")).path, 300) or ""]
    return ids


class AuditCapture:
    """ASGI middleware recording outcomes, refusals and rejections (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trail = trail_of(scope["app"]) if scope["type"] == "http" and "app" in scope else None
        if trail is None:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if scope["method"] in STATE_CHANGING:
            tap = BodyTap(receive)
            state[TAP_KEY] = tap
            await self._held(scope, tap.receive, send, trail)
        else:
            await self._watched(scope, receive, send, trail)

    async def _held(self, scope: Scope, receive: Receive, send: Send, trail: AuditTrail) -> None:
        # The answer waits for its outcome record, so a client never sees a success the trail lacks.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, receive, hold)
        except Exception as exc:
            await self._safely(_after(scope, trail, 500, None, b"", error=type(exc).__name__))
            raise
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        await self._safely(_after(scope, trail, start["status"] if start else 500, start, body))
        for message in held:
            await send(message)

    async def _watched(self, scope: Scope, receive: Receive, send: Send, trail: AuditTrail) -> None:
        status, refusal = 0, bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif status in (401, 403) and len(refusal) < 4096:
                refusal.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, watch)
        if status in (401, 403):
            await self._safely(_after(scope, trail, status, None, bytes(refusal)))

    @staticmethod
    async def _safely(recording: Any) -> None:
        try:
            await recording
        except Exception:  # the action happened; its attempt stays "outcome unknown" and the log says why
            log.exception("an audit record after the answer could not be written")


def install_audit(app: FastAPI) -> None:
    """Capture the audit trail of `app` (records only once api_app gives it a trail)."""
    app.add_middleware(AuditCapture)
