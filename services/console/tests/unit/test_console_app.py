"""The console app: pages for the app's routes, hashed assets, and the proxy's forwarding rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from console.app import CONTENT_SECURITY_POLICY, build_app
from console.config import ConsoleSettings


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=app></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("not for the browser")
    return tmp_path


class Upstreams:
    """Stands in for the services' APIs: records what reached them, answers what the test says."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        self.bodies.append(await request.aread())
        if request.url.host == "billing.test" and request.url.path == "/v1/reports/arrears":
            return httpx.Response(200, content=b"a,b\n1,2\n", headers={
                "content-type": "text/csv", "content-disposition": 'attachment; filename="arrears.csv"',
                "set-cookie": "tracking=1", "server": "uvicorn"})
        if request.url.host == "vee.test":
            return httpx.Response(403, json={"problem": "forbidden", "reason": "needs operate"})
        if request.url.host == "down.test":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"path": request.url.path, "query": str(request.url.query, "ascii")})


@pytest.fixture
async def client(dist: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Upstreams]]:
    upstreams = Upstreams()
    settings = ConsoleSettings(web_dist=dist, upstreams={
        "billing": "http://billing.test", "vee": "http://vee.test", "ingest": "http://down.test",
        "commands": "http://commands.test/"})
    app = build_app(settings, transport=httpx.MockTransport(upstreams.handle))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as http:
            yield http, upstreams


async def test_the_app_routes_answer_the_page_uncached_and_assets_cached_for_good(
        client: tuple[httpx.AsyncClient, Upstreams]) -> None:
    http, _ = client
    for path in ("/console/", "/console/meters/WM-1", "/portal/pay/PO-1", "/portal"):
        page = await http.get(path)
        assert page.status_code == 200, path
        assert "id=app" in page.text
        assert page.headers["cache-control"] == "no-cache"
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["x-frame-options"] == "DENY"
    asset = await http.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert (await http.get("/")).headers["location"] == "/console/"


async def test_an_asset_path_cannot_climb_out_of_the_assets_folder(client: tuple[httpx.AsyncClient, Upstreams]) -> None:
    http, _ = client
    for path in ("/assets/../index.html", "/assets/%2e%2e/%2e%2e/secret.txt", "/assets/missing.js"):
        answer = await http.get(path)
        assert answer.status_code == 404, path
        assert "not for the browser" not in answer.text


async def test_the_proxy_forwards_credentials_query_and_body_and_nothing_else(
        client: tuple[httpx.AsyncClient, Upstreams]) -> None:
    http, upstreams = client
    answer = await http.post("/api/commands/v1/commands?dry=1&tag=a&tag=b", content=b'{"kind":"valve_close"}',
                             headers={"authorization": "Bearer t0k", "content-type": "application/json",
                                      "x-amiflow-reason": "leak%20reported", "cookie": "session=stolen",
                                      "x-tenant-id": "demo", "x-forwarded-for": "192.0.2.9"})
    assert answer.status_code == 200
    assert answer.json() == {"path": "/v1/commands", "query": "dry=1&tag=a&tag=b"}
    sent = upstreams.seen[-1]
    assert sent.method == "POST"
    assert upstreams.bodies[-1] == b'{"kind":"valve_close"}'
    assert sent.headers["authorization"] == "Bearer t0k"
    assert sent.headers["x-amiflow-reason"] == "leak%20reported"
    assert sent.headers["x-tenant-id"] == "demo"
    assert "cookie" not in sent.headers  # a cookie never carries authority through the console
    assert sent.headers["x-forwarded-for"] == "192.0.2.9, 10.1.2.3"


async def test_refusals_and_files_come_back_as_the_service_answered_them(
        client: tuple[httpx.AsyncClient, Upstreams]) -> None:
    http, _ = client
    refused = await http.get("/api/vee/v1/alarms")
    assert refused.status_code == 403
    assert refused.json() == {"problem": "forbidden", "reason": "needs operate"}
    report = await http.get("/api/billing/v1/reports/arrears")
    assert report.content == b"a,b\n1,2\n"
    assert report.headers["content-disposition"] == 'attachment; filename="arrears.csv"'
    assert "set-cookie" not in report.headers


async def test_an_unknown_or_silent_service_is_answered_with_a_reason(
        client: tuple[httpx.AsyncClient, Upstreams]) -> None:
    http, _ = client
    unknown = await http.get("/api/payroll/v1/x")
    assert unknown.status_code == 404
    assert unknown.json()["problem"] == "unknown_service"
    down = await http.get("/api/ingest/v1/meters")
    assert down.status_code == 502
    assert down.json() == {"problem": "upstream_unavailable", "reason": "ingest is not answering; try again shortly",
                           "detail": "ingest is not answering; try again shortly"}


async def test_without_a_built_web_app_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    app = build_app(ConsoleSettings(web_dist=tmp_path / "nothing"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c.test") as http:
            page = await http.get("/console/")
            assert page.status_code == 503
            assert "make web" in page.json()["reason"]
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"web_app_built": False}


def test_upstreams_default_to_the_ports_amiflow_up_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_API_PORT", "18003")
    monkeypatch.setenv("CONSOLE_UPSTREAMS", json.dumps({"vee": "http://vee-api:8002/"}))
    settings = ConsoleSettings()
    assert settings.upstreams["billing"] == "http://127.0.0.1:18003"
    assert settings.upstreams["vee"] == "http://vee-api:8002"
    assert settings.upstreams["identity"] == "http://127.0.0.1:8006"
    monkeypatch.setenv("CONSOLE_UPSTREAMS", json.dumps({"payroll": "http://x"}))
    with pytest.raises(ValueError, match="unknown service"):
        ConsoleSettings()
