"""FastAPI shell shared by every service API and worker: health, readiness, metrics, error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.metrics import HTTP_REJECTED

log = logging.getLogger("amiflow.http")

Readiness = Callable[[], Awaitable[dict[str, bool]]]
Lifespan = Callable[[FastAPI], Any]


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def tenant_of(request: Request, x_tenant_id: Annotated[str | None, Header(max_length=64)] = None) -> str:
    """The caller's tenant: the X-Tenant-Id header until bearer tokens carry it, else the default."""
    settings: ServiceSettings = request.app.state.settings
    return x_tenant_id or settings.default_tenant


T = TypeVar("T")


def validated(build: Callable[[], T], *location: str) -> T:
    """Build a domain value from a request; its validation errors answer 422 like FastAPI's own."""
    try:
        return build()
    except ValidationError as exc:
        errors = [{**error, "loc": (*location, *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


# Route parameters: `runtime: RuntimeDep`, `tenant: Tenant`.
RuntimeDep = Annotated[Any, Depends(_runtime)]
Tenant = Annotated[str, Depends(tenant_of)]


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
               liveness: Callable[[], str | None], routers: Sequence[APIRouter] = ()) -> FastAPI:
    """A FastAPI app with the ops endpoints, the given routers, tracing and 4xx bodies with reasons."""
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.include_router(ops_router(readiness, liveness))
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        route = request.scope.get("route")
        HTTP_REJECTED.labels(getattr(route, "path", "unknown"), "422").inc()
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
