"""Billing's reports as CSV (the default) or .xlsx: daily collections, arrears, consumption by group."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import Response

from billing.adapters import report_rows
from billing.adapters.report_rows import GroupBy
from billing.adapters.web import billing_settings, language_of
from billing.core.periods import local_date
from billing.statements import (
    ARREARS_REPORT,
    CONSUMPTION_BY_GROUP_REPORT,
    DAILY_COLLECTIONS_REPORT,
    Language,
    Report,
    render_csv,
    render_xlsx,
)

router = APIRouter(prefix="/v1/reports", tags=["reports"])

MAX_DAYS = 366
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Format = Annotated[Literal["csv", "xlsx"], Query(alias="format", description="csv (UTF-8 with BOM) or xlsx")]
Lang = Annotated[str | None, Query(description="zh-CN or en; else Accept-Language; else zh-CN")]
AcceptLanguage = Annotated[str | None, Header()]
First = Annotated[date, Query(alias="from", description="The first local day")]
Last = Annotated[date, Query(alias="to", description="The last local day, inclusive")]
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}, XLSX: {}}}}


def _days(first: date, last: date) -> None:
    if first > last or (last - first).days >= MAX_DAYS:
        raise HTTPException(422, detail={"problem": "invalid_period",
                                         "reason": f"from {first} to {last}: at most {MAX_DAYS} days, in order"})


def _file(report: Report[Any], rows: Sequence[Any], name: str, file_format: str, language: Language) -> Response:
    if file_format == "xlsx":
        content, media_type = render_xlsx(report, rows, language), XLSX
    else:
        content, media_type = render_csv(report, rows, language), "text/csv; charset=utf-8"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}.{file_format}"', "Vary": "Accept-Language"})


@router.get("/daily-collections", response_class=Response, responses=FILE_RESPONSES)
async def daily_collections(runtime: RuntimeDep, tenant: Tenant, first: First, last: Last, file_format: Format = "csv",
                            lang: Lang = None, accept_language: AcceptLanguage = None) -> Response:
    """Payments credited per local day and channel."""
    _days(first, last)
    async with runtime.sessions() as session:
        rows = await report_rows.daily_collections(session, tenant, first, last)
    return _file(DAILY_COLLECTIONS_REPORT, rows, f"daily-collections-{first}-{last}", file_format,
                 language_of(lang, accept_language))


@router.get("/arrears", response_class=Response, responses=FILE_RESPONSES)
async def arrears(runtime: RuntimeDep, tenant: Tenant, file_format: Format = "csv", lang: Lang = None,
                  accept_language: AcceptLanguage = None) -> Response:
    """Accounts whose balance is depleted now, with since when and their last payment."""
    today = local_date(runtime.clock.now(), ZoneInfo(billing_settings(runtime.settings).zone_of(tenant)))
    async with runtime.sessions() as session:
        rows = await report_rows.arrears(session, tenant, today)
    return _file(ARREARS_REPORT, rows, f"arrears-{today}", file_format, language_of(lang, accept_language))


@router.get("/consumption", response_class=Response, responses=FILE_RESPONSES)
async def consumption(runtime: RuntimeDep, tenant: Tenant, first: First, last: Last,
                      group_by: GroupBy = GroupBy.CUSTOMER_KIND, file_format: Format = "csv", lang: Lang = None,
                      accept_language: AcceptLanguage = None) -> Response:
    """Consumption and charges per service and customer group (or account)."""
    _days(first, last)
    language = language_of(lang, accept_language)
    async with runtime.sessions() as session:
        rows = await report_rows.consumption(session, tenant, first, last, group_by, language)
    return _file(CONSUMPTION_BY_GROUP_REPORT, rows, f"consumption-{first}-{last}", file_format, language)
