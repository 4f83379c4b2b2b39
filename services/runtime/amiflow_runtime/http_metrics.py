"""Request rate, errors and duration of every API, by route template (the RED metrics a dashboard
and an alert need). Unmatched paths share one label so a scanner cannot explode the series count."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amiflow_runtime.audit_http import route_template

HTTP_REQUESTS = Counter(
    "amiflow_http_requests_total", "API requests answered, by route template, method and status code",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "amiflow_http_request_seconds", "Time from a request's arrival to the end of its answer", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNMATCHED = "unmatched"
_OPS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: not traffic


class RequestMetrics:
    """Pure ASGI middleware: counts each answered request and times it until its last body chunk."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPS:
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500  # an exception that escapes is answered 500 by the server

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # Routing wrote the matched route into the scope; a path nothing matched has none.
            route = route_template(scope) if scope.get("route") is not None else UNMATCHED
            HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            HTTP_SECONDS.labels(route, scope["method"]).observe(time.perf_counter() - started)
