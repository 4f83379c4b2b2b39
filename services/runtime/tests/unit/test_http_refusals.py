"""The HTTP shell's refusals: oversized bodies answered 413 unread, malformed JSON 422 with the reason,
and every refusal documented in each route's OpenAPI responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.http import create_app, lifespan_of
from amiflow_runtime.http_refusals import allows_body
from amiflow_runtime.testing import auth_headers
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

APP_LIMIT = 2048
UPLOAD_LIMIT = 8192


class Note(BaseModel):
    text: str


def notes_app(handled: list[str]) -> FastAPI:
    """A service app with a JSON route and an upload route that allows larger bodies."""
    router = APIRouter(prefix="/v1")

    @router.post("/notes")
    async def add_note(note: Note) -> dict[str, str]:
        handled.append(note.text)
        return {"text": note.text}

    @router.post("/uploads", openapi_extra=allows_body(UPLOAD_LIMIT))
    async def upload(body: Note) -> dict[str, int]:
        handled.append("upload")
        return {"size": len(body.text)}

    async def nothing() -> None:
        return None

    async def ready() -> dict[str, bool]:
        return {"started": True}

    app = create_app(title="notes", description="test", lifespan=lifespan_of(nothing, nothing), readiness=ready,
                     liveness=lambda: None, routers=[router], max_body_bytes=APP_LIMIT)
    app.state.settings = ServiceSettings()
    return app


@pytest.fixture
async def notes() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    handled: list[str] = []
    transport = httpx.ASGITransport(app=notes_app(handled))
    async with httpx.AsyncClient(transport=transport, base_url="http://notes", headers=auth_headers("t1")) as http:
        yield http, handled


def _note(size: int) -> bytes:
    return b'{"text": "' + b"x" * (size - 12) + b'"}'


async def test_a_body_declared_larger_than_the_limit_is_refused_413_with_the_reason_and_never_handled(
    notes: tuple[httpx.AsyncClient, list[str]],
) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", content=_note(APP_LIMIT + 1), headers={"content-type": "application/json"})

    assert response.status_code == 413
    reason = f"the body is larger than the {APP_LIMIT} bytes this route accepts"
    assert response.json() == {"detail": {"problem": "too_large", "reason": reason}}
    assert handled == []


async def test_a_body_within_the_limit_is_handled(notes: tuple[httpx.AsyncClient, list[str]]) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", content=_note(APP_LIMIT), headers={"content-type": "application/json"})

    assert response.status_code == 200 and handled == ["x" * (APP_LIMIT - 12)]


async def test_an_upload_route_takes_bodies_above_the_service_limit_up_to_its_own(
    notes: tuple[httpx.AsyncClient, list[str]],
) -> None:
    http, handled = notes
    json = {"content-type": "application/json"}

    accepted = await http.post("/v1/uploads", content=_note(UPLOAD_LIMIT), headers=json)
    refused = await http.post("/v1/uploads", content=_note(UPLOAD_LIMIT + 1), headers=json)

    assert accepted.status_code == 200 and handled == ["upload"]
    assert refused.status_code == 413 and str(UPLOAD_LIMIT) in refused.json()["detail"]["reason"]


async def _send_raw(app: FastAPI, path: str, chunks: list[bytes], length: int | None) -> tuple[int, bytes, int]:
    """One request through the app's ASGI interface; (status, body, chunks the app read)."""
    headers = [(b"content-type", b"application/json"), (b"host", b"notes"),
               *((k.lower().encode(), v.encode()) for k, v in auth_headers("t1").items())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("notes", 80)}
    read = 0
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"], read


async def test_a_declared_oversized_body_is_refused_before_any_of_it_is_read() -> None:
    app = notes_app([])
    chunks = [b"x" * 1024] * 100

    status, _, read = await _send_raw(app, "/v1/notes", chunks, length=100 * 1024)

    assert (status, read) == (413, 0)


async def test_a_body_streamed_without_a_length_is_cut_off_once_it_passes_the_limit() -> None:
    app = notes_app([])
    chunks = [b"x" * 1024] * 100

    status, body, read = await _send_raw(app, "/v1/notes", chunks, length=None)

    assert status == 413 and b"too_large" in body
    assert read == APP_LIMIT // 1024 + 1  # the chunk that crossed the limit, none after it


@pytest.mark.parametrize(("body", "location"), [
    (b'{"text": "unclosed', "body.9"),
    (b'{"text": "a",}', "body.13"),
    (b"", "body"),
])
async def test_malformed_json_is_answered_422_with_where_and_why(
    notes: tuple[httpx.AsyncClient, list[str]], body: bytes, location: str,
) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422 and handled == []
    answer = response.json()
    assert answer["detail"] == "the request is not valid"
    assert answer["errors"][0]["location"] == location and answer["errors"][0]["reason"]


async def test_a_json_body_that_is_not_utf8_is_answered_400_not_500(notes: tuple[httpx.AsyncClient, list[str]]) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", content=b'{"text": "\xff"}', headers={"content-type": "application/json"})

    assert response.status_code == 400 and handled == []
    assert response.json() == {"detail": "There was an error parsing the body"}


def test_every_service_route_documents_the_shared_refusals_and_ops_routes_do_not() -> None:
    document = notes_app([]).openapi()

    for path in ("/v1/notes", "/v1/uploads"):
        responses = document["paths"][path]["post"]["responses"]
        assert {"400", "401", "403", "413", "422"} <= set(responses), path
        assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Refused"}
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200"}


def test_the_body_limit_is_a_platform_setting_of_one_mebibyte_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().http_max_body_bytes == 1024 * 1024

    monkeypatch.setenv("AMIFLOW_HTTP_MAX_BODY_BYTES", "65536")

    assert ServiceSettings().http_max_body_bytes == 65536


@pytest.mark.parametrize("text", ["a\\u0000b", "\\ud800", "x\\udfff"])
async def test_text_postgresql_cannot_store_is_refused_422_naming_the_field(
    notes: tuple[httpx.AsyncClient, list[str]], text: str,
) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", content=f'{{"text": "{text}"}}'.encode(),
                               headers={"content-type": "application/json"})

    assert response.status_code == 422 and handled == []
    assert response.json()["errors"] == [{"location": "body.text", "type": "unstorable_text",
                                          "reason": "NUL characters and lone surrogates are not accepted"}]


async def test_a_surrogate_pair_is_ordinary_text_and_accepted(notes: tuple[httpx.AsyncClient, list[str]]) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", content=b'{"text": "\\ud83d\\ude00 \\\\u0000"}',
                               headers={"content-type": "application/json"})

    assert response.status_code == 200 and handled == ["\N{GRINNING FACE} \\u0000"]


async def test_a_nul_in_the_query_is_refused_422(notes: tuple[httpx.AsyncClient, list[str]]) -> None:
    http, handled = notes

    response = await http.post("/v1/notes?tag=a%00b", json={"text": "ok"})

    assert response.status_code == 422 and handled == []
    assert response.json()["errors"][0]["location"] == "query.tag"


@pytest.mark.parametrize("tenant", ["a\tb", "two words", "x" * 65])
async def test_an_x_tenant_id_that_is_no_identifier_is_refused_422(notes: tuple[httpx.AsyncClient, list[str]],
                                                                    tenant: str) -> None:
    http, handled = notes

    response = await http.post("/v1/notes", json={"text": "ok"}, headers={"X-Tenant-Id": tenant})

    assert response.status_code == 422 and handled == []
    assert response.json()["errors"][0]["location"] == "header.x-tenant-id"
