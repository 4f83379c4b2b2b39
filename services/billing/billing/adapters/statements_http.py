"""Monthly e-bills: HTML or PDF (by suffix or Accept), Chinese or English (by ?lang= or Accept-Language)."""

from __future__ import annotations

import logging
import re
from typing import Annotated

from amiflow_runtime.auth import ACCOUNT_DATA
from amiflow_runtime.http import RuntimeDep, Tenant
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from billing import operations
from billing.adapters.monthly_statement import statement_of
from billing.adapters.web import answering_refusals, billing_settings, language_of, preferred, refusal_docs
from billing.core.periods import local_date
from billing.operations import Refusal, Refused
from billing.statements import BillingMonth, StatementDoesNotReconcile, render_html, render_pdf

log = logging.getLogger("amiflow.billing.statements")
router = APIRouter(prefix="/v1", tags=["statements"])

FORMATS = {"html": "text/html", "pdf": "application/pdf"}
_MONTH = re.compile(r"^(\d{4})-(\d{2})(?:\.(html|pdf))?$")


def _month(text: str) -> tuple[BillingMonth, str | None]:
    found = _MONTH.match(text)
    try:
        if found is None:
            raise ValueError(text)
        return BillingMonth(int(found[1]), int(found[2])), found[3]
    except ValueError:
        raise HTTPException(422, detail={"problem": "invalid_month",
                                         "reason": f"{text!r} is not a month as yyyy-mm (.html or .pdf)"}) from None


@router.get("/accounts/{account_id}/statements/{month}", openapi_extra=ACCOUNT_DATA,
            responses={200: {"content": {"text/html": {}, "application/pdf": {}}},
                       406: {"description": "Neither HTML nor PDF is acceptable"},
                       **refusal_docs(Refusal.NOT_FOUND, Refusal.INVALID)})
async def monthly_statement(account_id: str, month: str, runtime: RuntimeDep, tenant: Tenant,
                            lang: Annotated[str | None, Query(description="zh-CN or en")] = None,
                            accept: Annotated[str | None, Header()] = None,
                            accept_language: Annotated[str | None, Header()] = None) -> Response:
    """The account's e-bill of a local month (yyyy-mm, or yyyy-mm.pdf / .html); it reconciles with the ledger."""
    billing_month, suffix = _month(month)
    chosen = suffix or preferred(accept, FORMATS, "html")
    if chosen is None:
        raise HTTPException(406, detail={"problem": "not_acceptable", "reason": "statements are text/html or "
                                                                                "application/pdf"})
    language = language_of(lang, accept_language)
    with answering_refusals():
        async with runtime.sessions() as session:
            account = await operations.account_of(session, tenant, account_id)
            if billing_month.first_day > local_date(runtime.clock.now(), account.zone):
                raise Refused(Refusal.NOT_FOUND, f"{billing_month} has not begun", "month_not_begun")
            statement = await statement_of(session, tenant, account, billing_month,
                                           billing_settings(runtime.settings).tenant_name(tenant), language)
    headers = {"Vary": "Accept, Accept-Language", "Content-Language": language.value}
    try:
        if chosen == "html":
            return HTMLResponse(render_html(statement, language), headers=headers)
        document = await run_in_threadpool(render_pdf, statement, language)  # reportlab is CPU-bound
    except StatementDoesNotReconcile as exc:
        # Never send a bill that disagrees with the ledger: an operator has to look at why.
        log.error("statement of %s for %s not sent: %s", account_id, billing_month, exc)
        raise HTTPException(500, detail={"problem": "does_not_reconcile", "reason": str(exc)}) from None
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"statement-{account_id}-{billing_month}.pdf")
    headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return Response(document, media_type="application/pdf", headers=headers)
