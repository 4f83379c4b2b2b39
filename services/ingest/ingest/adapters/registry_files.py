"""Registry files: CSV import (dry run or all-or-nothing) and export, and printable device labels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Any

from amiflow_runtime.http import RuntimeDep, Tenant
from amiflow_runtime.http_refusals import InvalidRequest, allows_body
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from ingest import registry_app as handlers
from ingest.adapters import registry_db as rdb
from ingest.adapters.labels import DeviceLabel, gateway_label, label_png, label_svg, meter_label
from ingest.adapters.registry_csv import (
    SHEETS,
    DeviceSheet,
    decode,
    gateway_cells,
    meter_cells,
    read_rows,
    sim_card_cells,
    write_rows,
)
from ingest.adapters.registry_views import answers_refusals
from ingest.core.registry import DeviceNotFound
from ingest.core.registry_import import ImportPlan

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
EXPORT_PAGE = 1000

router = APIRouter()
files = APIRouter(tags=["registry: files"])
labels = APIRouter(tags=["registry: labels"])


class SheetKind(StrEnum):
    METERS = "meters"
    GATEWAYS = "gateways"
    SIM_CARDS = "sim-cards"


class ImportProblem(BaseModel):
    line: int
    device_id: str
    reasons: list[str]


class ImportReport(BaseModel):
    kind: SheetKind
    dry_run: bool
    applied: bool
    rows: int
    registered: int
    updated: int
    unchanged: int
    problems: list[ImportProblem]


def _report(kind: SheetKind, dry_run: bool, rows: int, plan: ImportPlan) -> dict[str, Any]:
    return {"kind": kind.value, "dry_run": dry_run, "applied": plan.acceptable and not dry_run, "rows": rows,
            "registered": plan.registered, "updated": plan.updated, "unchanged": plan.unchanged,
            "problems": [{"line": p.line, "device_id": p.device_id, "reasons": list(p.reasons)}
                         for p in plan.problems]}


async def _file_bytes(request: Request) -> bytes | None:
    """The CSV: the request body, or the ``file`` part of a multipart form; None when too large."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_FILE_BYTES:
        return None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_files=1) as form:
            upload = form.get("file")
            content = await upload.read() if isinstance(upload, UploadFile) else str(upload or "").encode()
    else:
        content = await request.body()
    return content if len(content) <= MAX_FILE_BYTES else None


@files.post("/registry/import", response_model=ImportReport,
            responses={413: {"description": "The file is larger than 20 MiB"},
                       422: {"model": ImportReport | InvalidRequest,
                             "description": "Rows have problems (or the request is not valid); nothing was applied"}},
            openapi_extra={**allows_body(MAX_FILE_BYTES), "requestBody": {"content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "file": {"type": "string", "format": "binary"}}}}}}})
async def import_sheet(request: Request, kind: SheetKind, runtime: RuntimeDep, tenant: Tenant,
                       dry_run: bool = False) -> Any:
    """Import a CSV of devices: a dry run lists every bad row with its line and reasons and applies
    nothing; a real run applies every row in one transaction, or, if any row is bad, none (422)."""
    content = await _file_bytes(request)
    if content is None:
        return JSONResponse({"detail": f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"}, 413)
    sheet = SHEETS[kind.value]
    rows = read_rows(decode(content), sheet, MAX_ROWS)
    plan = await handlers.import_sheet(runtime, tenant, sheet, rows, dry_run)
    report = _report(kind, dry_run, len(rows.rows), plan)
    return JSONResponse(report, status_code=200 if dry_run or plan.acceptable else 422)


@files.get("/registry/export", response_class=StreamingResponse,
           responses={200: {"content": {"text/csv": {}}, "description": "Every device of the kind, as CSV"}})
async def export_sheet(kind: SheetKind, runtime: RuntimeDep, tenant: Tenant) -> StreamingResponse:
    """Every device of the kind as CSV, in the columns import reads (an export imports back unchanged)."""
    sheet = SHEETS[kind.value]
    headers = {"content-disposition": f'attachment; filename="{tenant}-{kind.value}.csv"'}
    return StreamingResponse(_export(runtime, tenant, sheet), media_type="text/csv; charset=utf-8", headers=headers)


def _pages(sheet: DeviceSheet[Any]) -> Callable[[Any, str, str | None], Awaitable[Sequence[dict[str, str]]]]:
    async def page(session: Any, tenant: str, after: str | None) -> Sequence[dict[str, str]]:
        if sheet.kind == SheetKind.METERS:
            return [meter_cells(m) for m in await rdb.list_meters(session, tenant, after=after, limit=EXPORT_PAGE)]
        if sheet.kind == SheetKind.GATEWAYS:
            return [gateway_cells(g) for g in await rdb.list_gateways(session, tenant, after=after,
                                                                       limit=EXPORT_PAGE)]
        return [sim_card_cells(c) for c in await rdb.list_sim_cards(session, tenant, after=after, limit=EXPORT_PAGE)]
    return page


async def _export(runtime: Any, tenant: str, sheet: DeviceSheet[Any]) -> AsyncIterator[str]:
    # Page by id so a large tenant streams in constant memory; the header goes out first.
    page_of, after, header = _pages(sheet), None, True
    while True:
        async with runtime.sessions() as session:
            rows = await page_of(session, tenant, after)
        text = write_rows(sheet, rows)
        yield text if header else text.split("\r\n", 1)[1]
        header = False
        if len(rows) < EXPORT_PAGE:
            return
        after = rows[-1][sheet.id_column]


async def _meter_label(runtime: Any, tenant: str, meter_id: str) -> DeviceLabel:
    async with runtime.sessions() as session:
        found = await rdb.meter(session, tenant, meter_id)
    if found is None:
        raise DeviceNotFound(f"meter {meter_id} is not registered")
    return meter_label(found)


async def _gateway_label(runtime: Any, tenant: str, gateway_id: str) -> DeviceLabel:
    async with runtime.sessions() as session:
        found = await rdb.gateway(session, tenant, gateway_id)
    if found is None:
        raise DeviceNotFound(f"gateway {gateway_id} is not registered")
    return gateway_label(found)


_SVG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/svg+xml": {}}}}
_PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}


@labels.get("/meters/{meter_id}/label.svg", response_class=Response, responses=_SVG)
@answers_refusals
async def meter_label_svg(meter_id: str, runtime: RuntimeDep, tenant: Tenant) -> Response:
    """A printable label: QR code of amiflow://<tenant>/meter/<id>, the id, profile and bus address."""
    return Response(label_svg(await _meter_label(runtime, tenant, meter_id)), media_type="image/svg+xml")


@labels.get("/meters/{meter_id}/label.png", response_class=Response, responses=_PNG)
@answers_refusals
async def meter_label_png(meter_id: str, runtime: RuntimeDep, tenant: Tenant) -> Response:
    return Response(label_png(await _meter_label(runtime, tenant, meter_id)), media_type="image/png")


@labels.get("/gateways/{gateway_id}/label.svg", response_class=Response, responses=_SVG)
@answers_refusals
async def gateway_label_svg(gateway_id: str, runtime: RuntimeDep, tenant: Tenant) -> Response:
    """A printable label: QR code of amiflow://<tenant>/gateway/<id>, the id, kind, model and registration id."""
    return Response(label_svg(await _gateway_label(runtime, tenant, gateway_id)), media_type="image/svg+xml")


@labels.get("/gateways/{gateway_id}/label.png", response_class=Response, responses=_PNG)
@answers_refusals
async def gateway_label_png(gateway_id: str, runtime: RuntimeDep, tenant: Tenant) -> Response:
    return Response(label_png(await _gateway_label(runtime, tenant, gateway_id)), media_type="image/png")


router.include_router(files)
router.include_router(labels)
