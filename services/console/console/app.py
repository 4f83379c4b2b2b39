"""The console's HTTP app: the built single-page app, and `/api/<service>/<path>` proxied to that service's API.

Why a proxy and not CORS on six APIs: the browser talks to one origin, so the token never crosses origins, the
pages need no per-deployment API addresses, and one Ingress (or one port on a laptop) serves everything. The proxy
decides nothing: it forwards the caller's `Authorization` and the answering service authenticates, authorises and
audits the call as it would any other client's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from amiflow_runtime.http import ops_router
from amiflow_runtime.http_metrics import RequestMetrics
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.propagate import inject
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.config import UPSTREAM_PORTS, ConsoleSettings

log = logging.getLogger("amiflow.console")

# What of the browser's request reaches the service: credentials, content negotiation, the tenant an admin
# names, why an operator acts (the audit trail) and conditional requests. Cookies are not forwarded: the APIs
# authenticate bearer tokens only, so a cookie can never carry authority through the console.
FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept", "accept-language", "x-tenant-id",
                             "x-amiflow-reason", "idempotency-key", "if-none-match", "if-match", "user-agent")
FORWARDED_RESPONSE_HEADERS = ("content-type", "content-disposition", "cache-control", "etag", "location",
                              "retry-after", "www-authenticate", "x-request-id", "last-modified")
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# The pages load nothing from elsewhere: scripts, styles, images and the map are all served from here.
# ECharts sets inline styles on its elements, hence 'unsafe-inline' for styles only (never for scripts).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# The single-page app's own routes: every path under them answers index.html and the router takes over.
APP_PREFIXES = ("console", "portal")


class SecurityHeaders:
    """Pure ASGI middleware: the headers above on every answer (pages and proxied API answers alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS if k not in present)]
            await send(message)

        await self.app(scope, receive, sending)


def _problem(status: int, problem: str, reason: str) -> JSONResponse:
    return JSONResponse({"problem": problem, "reason": reason, "detail": reason}, status_code=status)


def _forwarded_for(request: Request) -> str:
    """The X-Forwarded-For the service sees: what reached us, plus the address that connected to us. The
    services believe it only from AMIFLOW_TRUSTED_PROXIES (the console's address there makes it count)."""
    client = request.client.host if request.client else "unknown"
    earlier = request.headers.get("x-forwarded-for")
    return f"{earlier}, {client}" if earlier else client


def _upstream_headers(request: Request) -> dict[str, str]:
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    headers["x-forwarded-for"] = _forwarded_for(request)
    # Behind an Ingress the console itself is reached over http: the scheme the browser used is what the
    # Ingress said, if it said anything.
    headers["x-forwarded-proto"] = request.headers.get("x-forwarded-proto") or request.url.scheme
    headers["x-forwarded-host"] = request.headers.get("host", "")
    inject(headers)  # the trace continues into the service: one trace from the click to the database
    return headers


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


def proxy_handler(settings: ConsoleSettings) -> Any:
    async def proxy(service: str, path: str, request: Request) -> Response:
        base = settings.upstreams.get(service)
        if base is None:
            return _problem(404, "unknown_service",
                            f"no service {service!r} behind the console; known: {', '.join(UPSTREAM_PORTS)}")
        client: httpx.AsyncClient = request.app.state.upstream
        has_body = request.method in ("POST", "PUT", "PATCH", "DELETE")
        outgoing = client.build_request(request.method, f"{base}/{path}", params=httpx.QueryParams(request.url.query),
                                        headers=_upstream_headers(request),
                                        content=_body(request) if has_body else None)
        try:
            answer = await client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            log.warning("console: %s did not answer %s /%s in time", service, request.method, path)
            return _problem(504, "upstream_timeout", f"{service} did not answer in time")
        except httpx.TransportError as exc:
            log.warning("console: %s is not answering (%s)", service, type(exc).__name__)
            return _problem(502, "upstream_unavailable", f"{service} is not answering; try again shortly")
        headers = {name: answer.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in answer.headers}
        # Decoded bytes: the client negotiated any compression with the service itself, and Content-Encoding
        # is not passed on.
        return StreamingResponse(answer.aiter_bytes(), status_code=answer.status_code, headers=headers,
                                 background=BackgroundTask(answer.aclose))

    return proxy


def _page(dist: Path) -> Response:
    index = dist / "index.html"
    if not index.is_file():
        return _problem(503, "console_not_built",
                        f"the web app is not built ({index} is missing): run `make web`")
    # The page names its hashed assets: it must be fetched afresh so a new release is picked up at once.
    return FileResponse(index, headers={"cache-control": "no-cache"})


def _asset(dist: Path, path: str) -> Response:
    root = (dist / "assets").resolve()
    wanted = (root / path).resolve()
    if not wanted.is_relative_to(root) or not wanted.is_file():
        return _problem(404, "not_found", f"no asset {path}")
    # File names carry a content hash (Vite), so a cached copy can never be stale.
    return FileResponse(wanted, headers={"cache-control": "public, max-age=31536000, immutable"})


def build_app(settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The console app; `transport` replaces the network to the services (tests)."""
    dist = settings.web_dist

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No redirects followed and no environment proxies: the console talks to exactly the configured APIs.
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=40)
        timeout = httpx.Timeout(settings.upstream_timeout_s, connect=5.0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False,
                                     trust_env=False, transport=transport) as client:
            app.state.upstream = client
            yield

    async def readiness() -> dict[str, bool]:
        return {"web_app_built": (dist / "index.html").is_file()}

    app = FastAPI(title="amiflow console", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="The operator console and the customer portal, and a same-origin proxy to the APIs.")
    app.include_router(ops_router(readiness, lambda: None))
    app.add_api_route("/api/{service}/{path:path}", proxy_handler(settings), methods=PROXIED_METHODS,
                      include_in_schema=False)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/console/", status_code=302)

    @app.get("/assets/{path:path}", include_in_schema=False)
    async def asset(path: str) -> Response:
        return _asset(dist, path)

    for prefix in APP_PREFIXES:
        app.add_api_route(f"/{prefix}", lambda: _page(dist), include_in_schema=False)
        app.add_api_route(f"/{prefix}/{{rest:path}}", lambda rest: _page(dist), include_in_schema=False)

    @app.get("/console-config.json", include_in_schema=False)
    async def web_config() -> JSONResponse:
        # What the pages need before anyone logs in: local days and times are shown in the tenant's zone
        # (the same zone the services bucket and settle in), not the browser's.
        return JSONResponse({"time_zone": settings.time_zone, "tenant_time_zones": settings.tenant_time_zones},
                            headers={"cache-control": "no-cache"})

    @app.get("/favicon.svg", include_in_schema=False)
    async def favicon() -> Response:
        icon = dist / "favicon.svg"
        return FileResponse(icon) if icon.is_file() else _problem(404, "not_found", "no favicon")

    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics,assets")
    return app
