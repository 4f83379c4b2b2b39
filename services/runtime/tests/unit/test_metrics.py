"""The metrics every service exports: RED metrics of the APIs by route template, and consumer lag per partition."""

from __future__ import annotations

import httpx
from amiflow_runtime.http_metrics import HTTP_REQUESTS, HTTP_SECONDS, UNMATCHED, RequestMetrics
from amiflow_runtime.http_refusals import BodyLimit
from fastapi import APIRouter, FastAPI, HTTPException


def _app() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1/meters")

    @router.get("/{meter_id}")
    async def meter(meter_id: str) -> dict[str, str]:
        if meter_id == "gone":
            raise HTTPException(404, "no such meter")
        return {"meter_id": meter_id}

    @router.post("/{meter_id}/boom")
    async def boom(meter_id: str) -> None:
        raise RuntimeError("a bug")

    app.include_router(router)

    @app.get("/metrics")
    async def scrape() -> str:
        return ""

    app.add_middleware(BodyLimit, default=100)  # as create_app stacks them: a middleware between must not hide routing
    app.add_middleware(RequestMetrics)
    return app


def _count(route: str, method: str, status: str) -> float:
    return HTTP_REQUESTS.labels(route, method, status)._value.get()


async def test_requests_are_counted_by_route_template_and_status_and_timed() -> None:
    route = "/v1/meters/{meter_id}"
    before = (_count(route, "GET", "200"), _count(route, "GET", "404"), _count(UNMATCHED, "GET", "404"),
              _count("/v1/meters/{meter_id}/boom", "POST", "500"))
    timed = HTTP_SECONDS.labels(route, "GET")._sum.get()
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.get("/v1/meters/M-1")).status_code == 200
        assert (await http.get("/v1/meters/M-2")).status_code == 200
        assert (await http.get("/v1/meters/gone")).status_code == 404
        assert (await http.get("/wp-login.php")).status_code == 404
        assert (await http.post("/v1/meters/M-1/boom")).status_code == 500
        await http.get("/metrics")
    after = (_count(route, "GET", "200"), _count(route, "GET", "404"), _count(UNMATCHED, "GET", "404"),
             _count("/v1/meters/{meter_id}/boom", "POST", "500"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1]
    assert HTTP_SECONDS.labels(route, "GET")._sum.get() > timed
    assert _count("/metrics", "GET", "200") == 0  # scrapes and probes are not traffic


def test_the_lag_of_a_revoked_partition_is_forgotten_and_unknown_ones_are_no_error() -> None:
    from amiflow_runtime.metrics import forget_lag, note_lag
    from prometheus_client import REGISTRY

    labels = {"consumer": "c-forget", "topic": "amiflow.vee.readings", "partition": "3"}
    note_lag("c-forget", "amiflow.vee.readings", 3, next_offset=90, highwater=100)
    assert REGISTRY.get_sample_value("amiflow_consumer_lag", labels) == 10
    note_lag("c-forget", "amiflow.vee.readings", 3, next_offset=100, highwater=None)  # no fetch yet: unchanged
    assert REGISTRY.get_sample_value("amiflow_consumer_lag", labels) == 10
    forget_lag(["c-forget", "never-measured"], [("amiflow.vee.readings", 3), ("amiflow.vee.readings", 4)])
    assert REGISTRY.get_sample_value("amiflow_consumer_lag", labels) is None
