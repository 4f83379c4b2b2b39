"""Capturing the audit trail at the HTTP edge, the same way for every service: before the handler.

`record_attempt` is a dependency of every service route (create_app adds it), resolved right after
authentication: for a state-changing call it writes the attempt record — who, when, from where, what, why
and, for routes whose undo needs it, the state before — and only then lets the handler run. If the record
cannot be written the call is answered 503 and nothing happens: no action without its record.
`AuditCapture` (audit_capture.py) writes the outcome after the answer; a process killed in between leaves
an attempt without an outcome, which verify and the query API report as "outcome unknown".
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive, Scope

from amiflow_runtime.audit import STATE_CHANGING, attempt_record
from amiflow_runtime.audit_db import AuditTrail
from amiflow_runtime.audit_request import (
    BODY_LIMIT_BYTES,
    REDACTED,
    body_summary,
    capped,
    is_secret_name,
    objects_of,
    reason_of,
    redacted,
    where_of,
    who_of,
)
from amiflow_runtime.audit_undo import NO_UNDO, ActionRequest, UndoRegistry
from amiflow_runtime.auth import PUBLIC_KEY, Principal
from amiflow_runtime.inprocess import call_app

log = logging.getLogger("amiflow.audit")

REASON_HEADER = "x-amiflow-reason"
KEEP_BYTES = 4 * BODY_LIMIT_BYTES  # raw body bytes kept for parsing; the digest covers all of them
# Keys of the request state: the body tap, the attempt's record id and tenant, the action a call undoes.
TAP_KEY, ATTEMPT_KEY, TENANT_KEY, UNDOES_KEY = "audit_body_tap", "audit_attempt", "audit_tenant", "audit_undoes"
FORWARDED_HEADERS = ("authorization", "x-tenant-id", "user-agent", "x-forwarded-for")


def route_template(scope: Scope) -> str:
    """The matched route's path template with every router prefix ("/v1/commands/{command_id}/cancel").

    FastAPI keeps an included router's routes with their own relative paths; the template the request
    matched, prefixes included, is in its effective route context."""
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path_format", None)
    return str(template or getattr(scope.get("route"), "path", scope["path"]))


def trail_of(app: Any) -> AuditTrail | None:
    """The audit trail an app records to (api_app sets it); None for an app that keeps none."""
    trail: AuditTrail | None = getattr(app.state, "audit", None)
    return trail


def undo_registry_of(app: Any) -> UndoRegistry:
    """The service's compensators (api_app sets them); none declared means nothing is undoable."""
    registry: UndoRegistry = getattr(app.state, "audit_undo", NO_UNDO)
    return registry


class BodyTap:
    """Counts, hashes and keeps the first bytes of a request body as the app reads it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.size = 0
        self.digest = hashlib.sha256()
        self.kept = bytearray()
        self.complete = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self.size += len(chunk)
            self.digest.update(chunk)
            if len(self.kept) < KEEP_BYTES:
                self.kept += chunk[: KEEP_BYTES - len(self.kept)]
            self.complete = not message.get("more_body", False)
        return message


# --- Before the handler: the attempt --------------------------------------------------------------------

async def _parts(form: Any) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            digest, size = hashlib.sha256(), 0
            await value.seek(0)
            while chunk := await value.read(65536):
                digest.update(chunk)
                size += len(chunk)
            await value.seek(0)  # a handler given this form reads the file after us
            files.append({"field": name, "filename": capped(value.filename, 200), "size_bytes": size,
                          "sha256": digest.hexdigest(), "content_type": value.content_type})
        else:
            fields[name] = REDACTED if is_secret_name(name) else capped(str(value), 200)
    return {"files": files, "fields": fields}


async def _uploads(request: Request) -> dict[str, Any]:
    """Each uploaded file by name, size and sha256, and the form's other fields."""
    try:
        raw = await request.body()
    except RuntimeError:  # the route took the form already (File/Form parameters): read that one
        return await _parts(await request.form())

    async def replay() -> Message:
        return {"type": "http.request", "body": raw, "more_body": False}

    # A copy of the request is parsed, so the handler still parses the body itself, with its own limits.
    copy = Request({"type": "http", "method": request.method, "headers": request.scope["headers"]}, replay)
    async with copy.form() as form:
        return await _parts(form)


async def _body(request: Request) -> dict[str, Any] | None:
    tap: BodyTap | None = getattr(request.state, TAP_KEY, None)
    content_type = request.headers.get("content-type")
    if tap is None:  # an app without the capture middleware: read the body here
        raw = await request.body()
        tap = BodyTap(_nothing)
        tap.size, tap.kept, tap.complete = len(raw), bytearray(raw[:KEEP_BYTES]), True
        tap.digest.update(raw)
    if content_type and content_type.lower().startswith("multipart/form-data"):
        try:
            parts = await _uploads(request)
        except Exception:  # a form the parser refuses: the handler will say so; size and hash are kept
            log.debug("multipart body not readable for the audit record", exc_info=True)
            parts = {"files": [], "fields": {}}
        return {**(body_summary(bytes(tap.kept), tap.size, tap.digest.hexdigest(), content_type) or {}), **parts}
    if not tap.complete:
        await request.body()  # drain through the tap; Starlette keeps it for the handler
    return body_summary(bytes(tap.kept), tap.size, tap.digest.hexdigest(), content_type)


async def _nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _query(request: Request) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        query.setdefault(name, []).append(value)
    return {k: REDACTED if is_secret_name(k) else v[0] if len(v) == 1 else v for k, v in query.items()}


def _tenant(request: Request, principal: Principal | None) -> str:
    if principal is not None:
        return principal.tenant
    return request.headers.get("x-tenant-id") or request.app.state.settings.default_tenant


def where_from(scope: Scope, trail: AuditTrail) -> dict[str, Any]:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    client = scope.get("client")
    return where_of(client[0] if client else None, headers.get("x-forwarded-for"), headers.get("user-agent"),
                    trail.trusted_proxies)


def forwarded(request_headers: Mapping[str, str], extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The headers an in-process call made on a caller's behalf carries: their token, tenant and origin."""
    headers = [(name, request_headers[name]) for name in FORWARDED_HEADERS if name in request_headers]
    return [*headers, *(extra or {}).items()]


async def _before(request: Request, action: ActionRequest) -> dict[str, Any] | None:
    try:
        path = undo_registry_of(request.app).before_query(action)
    except Exception:  # a service's declaration failed on this request: the action goes on, its undo cannot
        log.exception("the state before %s could not be asked for", action.action)
        return {"error": "the state before the action could not be asked for"}
    if path is None:
        return None
    status, _headers, body = await call_app(request.app, "GET", path, forwarded(request.headers),
                                            client=request.scope.get("client"))
    before: dict[str, Any] = {"path": path, "status": status}
    try:
        answer = redacted(json.loads(body)) if body else None
    except ValueError:
        answer = None
    if answer is not None and len(body) <= 2 * BODY_LIMIT_BYTES:
        before["json"] = answer
    elif answer is not None:
        before["truncated"] = True
    return before


async def record_attempt(request: Request) -> None:
    """Write the attempt record of a state-changing call before its handler runs (503 if it cannot be)."""
    trail = trail_of(request.app)
    if trail is None or request.method not in STATE_CHANGING:
        return
    route: APIRoute = request.scope["route"]
    principal: Principal | None = getattr(request.state, "principal", None)
    body = await _body(request)
    body_json = (body or {}).get("json")
    path_params = {k: str(v) for k, v in request.path_params.items()}
    template = route_template(request.scope)
    action = ActionRequest(request.method, template, path_params, _query(request), body_json)
    what = {"method": request.method, "route": template, "path": request.url.path, "path_params": path_params,
            "query": action.query, "body": body}
    public_reason = (route.openapi_extra or {}).get(PUBLIC_KEY)
    who = who_of(principal, public_reason=public_reason,
                 provider=path_params.get("provider") if principal is None else None)
    tenant = _tenant(request, principal)
    document = attempt_record(
        tenant=tenant, who=who, where=where_from(request.scope, trail), what=what,
        why=reason_of(request.headers.get(REASON_HEADER), body_json), objects=objects_of(path_params, body_json),
        before=await _before(request, action) if principal is not None else None,
        undoes=getattr(request.state, UNDOES_KEY, None))
    try:
        [sealed] = await trail.record(document)
    except Exception:
        log.exception("the attempt of %s %s could not be recorded; refusing it", request.method, template)
        raise HTTPException(503, detail={"problem": "audit_unavailable",
                                         "reason": "the action cannot be recorded in the audit trail right now, "
                                                   "so it was not carried out"}) from None
    setattr(request.state, ATTEMPT_KEY, sealed.document["id"])
    setattr(request.state, TENANT_KEY, tenant)
