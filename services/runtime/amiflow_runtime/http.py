"""FastAPI shell shared by every service API and worker: health, readiness, metrics, error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import uvicorn
from amiflow_schemas.primitives import Identifier
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from amiflow_runtime.audit_capture import install_audit
from amiflow_runtime.audit_http import record_attempt, route_template
from amiflow_runtime.auth import (
    PUBLIC_KEY,
    AuthError,
    KeysUnavailable,
    Principal,
    TokenVerifier,
    WrongTenant,
    authorize,
    principal_of,
)
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.http_metrics import RequestMetrics
from amiflow_runtime.http_refusals import DEFAULT_MAX_BODY_BYTES, REFUSAL_DOCS, BodyLimit, storable_text_only
from amiflow_runtime.metrics import AUTH_REFUSED, HTTP_REJECTED

log = logging.getLogger("amiflow.http")

Readiness = Callable[[], Awaitable[dict[str, bool]]]
Lifespan = Callable[[FastAPI], Any]


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


_bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                     description="An access token from the identity service's /oauth/token (JWT).")


# X-Tenant-Id names a tenant: an Identifier (no spaces or control characters), since it keys rows, topics and
# the audit chain; anything else is answered 422 before it reaches them.
TenantHeader = Annotated[Identifier | None, Header(max_length=64)]


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        settings: ServiceSettings = request.app.state.settings
        verifier = TokenVerifier(issuer=settings.auth_issuer, audience=settings.auth_audience,
                                 jwks_url=settings.auth_jwks_url or None,
                                 jwks_file=settings.auth_jwks_file, leeway_s=settings.auth_leeway_s)
        request.app.state.token_verifier = verifier
    return verifier


def _refuse(request: Request, status: int, problem: str, reason: str) -> HTTPException:
    route = route_template(request.scope)  # with its router prefixes, as the audit trail names it
    AUTH_REFUSED.labels(route, str(status)).inc()
    log.info("%s %s refused (%d): %s", request.method, route, status, reason)
    headers = {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'} \
        if status == 401 else None
    return HTTPException(status, detail={"problem": problem, "reason": reason}, headers=headers)


async def caller_of(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
                    x_tenant_id: TenantHeader = None) -> Principal | None:
    """The authenticated caller, allowed to call this route; None on the few public routes.

    Runs on every route of every service router (create_app adds it), so a route that forgets to
    ask for the caller is still protected.
    """
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    if PUBLIC_KEY in extra:
        return None
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _refuse(request, 401, "unauthenticated", "a bearer token is needed")
    try:
        claims = await _verifier(request).claims(credentials.credentials)
        principal = principal_of(claims, acting_tenant=x_tenant_id)
    except AuthError as exc:
        raise _refuse(request, 401, "unauthenticated", str(exc)) from None
    except WrongTenant as exc:
        raise _refuse(request, 403, "forbidden", str(exc)) from None
    except KeysUnavailable as exc:
        log.error("tokens cannot be checked: %s", exc)
        raise HTTPException(503, detail={"problem": "keys_unavailable",
                                         "reason": "tokens cannot be checked right now"}) from None
    verdict = authorize(principal, request.method, extra, request.path_params)
    if not verdict.allowed:
        raise _refuse(request, verdict.status, "not_found" if verdict.status == 404 else "forbidden",
                      verdict.reason)
    request.state.principal = principal
    return principal


def tenant_of(request: Request, caller: Annotated[Principal | None, Depends(caller_of)],
              x_tenant_id: TenantHeader = None) -> str:
    """The tenant a call acts in: its token's (or the one a platform admin chose); on public routes,
    X-Tenant-Id or the default."""
    if caller is not None:
        return caller.tenant
    settings: ServiceSettings = request.app.state.settings
    return x_tenant_id or settings.default_tenant


def out_of_reach(what: str) -> HTTPException:
    """403 for a caller whose sites and duties do not cover `what` (a meter, a device, a district)."""
    return HTTPException(403, detail={"problem": "out_of_reach", "reason": f"{what} is outside your sites and duties"})


def signed_by(caller: Principal, name: str) -> str:
    """The name an action is recorded under: `name` when the caller may sign with it (an operator only their
    own, an administrator on someone's behalf — the audit trail names the administrator); else 422."""
    if caller.may_sign_as(name):
        return name
    raise HTTPException(422, detail={"problem": "not_your_name",
                                     "reason": f"an operator signs with their own name ({caller.subject}), "
                                               f"not {name!r}"})


def _require_caller(caller: Annotated[Principal | None, Depends(caller_of)]) -> Principal:
    if caller is None:
        raise RuntimeError("a public route asked for the authenticated caller")
    return caller


T = TypeVar("T")


def validated(build: Callable[[], T], *location: str) -> T:
    """Build a domain value from a request; its validation errors answer 422 like FastAPI's own."""
    try:
        return build()
    except ValidationError as exc:
        errors = [{**error, "loc": (*location, *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


# Route parameters: `runtime: RuntimeDep`, `tenant: Tenant`, `caller: Caller` (who, their roles and reach).
RuntimeDep = Annotated[Any, Depends(_runtime)]
Tenant = Annotated[str, Depends(tenant_of)]
Caller = Annotated[Principal, Depends(_require_caller)]


def ops_router(readiness: Readiness, liveness: Callable[[], str | None]) -> APIRouter:
    """/healthz (the process works), /readyz (it can serve: database, Kafka, consumers), /metrics."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> JSONResponse:
        problem = liveness()
        if problem:
            return JSONResponse({"status": "failing", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get("/readyz", summary="Readiness")
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(*, title: str, description: str, lifespan: Lifespan, readiness: Readiness,
               liveness: Callable[[], str | None], routers: Sequence[APIRouter] = (),
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app with the ops endpoints, the given routers, tracing and 4xx bodies with reasons; request
    bodies over `max_body_bytes` are refused unread (413) unless a route allows more (http_refusals)."""
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.include_router(ops_router(readiness, liveness))
    for router in routers:
        # Every service route is authenticated and authorised; ops endpoints above are not. A state-changing
        # call is then recorded in the audit trail before its handler runs (audit_http.py).
        app.include_router(router, dependencies=[Depends(caller_of), Depends(storable_text_only),
                                                 Depends(record_attempt)], responses=REFUSAL_DOCS)
    install_audit(app)
    app.add_middleware(BodyLimit, default=max_body_bytes)  # nothing reads a body past the limit
    app.add_middleware(RequestMetrics)  # outermost: a 413 and every other answer is counted and timed

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        HTTP_REJECTED.labels(route_template(request.scope), "422").inc()
        errors = [{"location": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": "the request is not valid", "errors": errors}, status_code=422)

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app


def lifespan_of(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> Lifespan:
    """A FastAPI lifespan that calls `start` (which must not block on dependencies) and `stop`."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await start()
        try:
            yield
        finally:
            await stop()

    return lifespan


def serve(app: FastAPI, settings: ServiceSettings, port: int) -> None:
    """Run `app` under uvicorn until SIGTERM or Ctrl-C; logging stays as configured."""
    uvicorn.run(app, host=settings.api_host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=20)
