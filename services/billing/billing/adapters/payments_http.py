"""Money in: payments (idempotent per provider transaction), signed provider callbacks, batch recharges
and subsidies (idempotent per batch line)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.auth import public
from amiflow_runtime.http import RuntimeDep, Tenant, validated
from amiflow_runtime.logs import log_context
from amiflow_schemas import Envelope
from amiflow_schemas.events.billing import PaymentChannel
from amiflow_schemas.primitives import Identifier
from fastapi import APIRouter, Header, HTTPException, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing import operations, orders
from billing.adapters.web import answering_refusals, billing_settings, refusal_docs
from billing.core.payments import verify_callback
from billing.operations import BatchOrder, LineStatus, Refusal

log = logging.getLogger("amiflow.billing.payments")
# Providers authenticate by signing the body (HMAC-SHA256), checked before anything else; no token.
SIGNED_BY_PROVIDER = public("the provider signs the body (HMAC-SHA256); the signature is checked first")
router = APIRouter(prefix="/v1", tags=["payments"])

# Money as a decimal string ("50.00") or a whole number; a JSON float is refused with its reason.
Amount = Annotated[Any, Field(json_schema_extra={"type": "string", "examples": ["50.00"]})]
BatchId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\s\x00-\x1f\x7f]+$")]


class CallbackProvider(StrEnum):
    WECHAT_PAY = "wechat_pay"
    ALIPAY = "alipay"
    BANK = "bank"


class RecordPayment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: Identifier
    channel: PaymentChannel
    provider_transaction_id: Identifier
    amount: Amount
    currency: Annotated[str, Field(max_length=8)]
    paid_at: AwareDatetime | None = Field(None, description="The provider's payment time; now if left out")


class CallbackNotice(BaseModel):
    """The body a provider callback carries (after its signature has been verified)."""

    account_id: Identifier
    provider_transaction_id: Identifier
    amount: Amount
    currency: Annotated[str, Field(max_length=8)]
    paid_at: AwareDatetime
    order_id: Identifier | None = Field(None, description="The payment order paid; it must be one of this "
                                                          "account's, for this amount, currency and provider")


class BatchLine(BaseModel):
    """One line; checked on its own, so a wrong line is rejected without failing the batch."""

    account_id: Any = None
    amount: Amount = None
    reason: Any = None  # a subsidy keeps it; a recharge does not


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: BatchId
    currency: Annotated[str, Field(max_length=8)] | None = Field(None, description="The tenant's if left out")
    lines: Annotated[list[BatchLine], Field(min_length=1, max_length=1000)]


class RechargeBatch(Batch):
    channel: PaymentChannel = PaymentChannel.OPERATOR


class CreditView(BaseModel):
    """The ledger event that credited the money: the same for a repeat of the request."""

    event_id: UUID
    event_type: str
    recorded_at: datetime
    account_id: str
    amount: Decimal
    currency: str
    channel: PaymentChannel | None = None
    provider_transaction_id: str | None = None
    paid_at: datetime | None = None
    batch_id: str | None = None
    line_number: int | None = None


class LineView(BaseModel):
    line_number: int
    account_id: str | None
    status: LineStatus
    event_id: UUID | None
    problem: str | None
    reason: str | None


class BatchView(BaseModel):
    batch_id: str
    accepted: int
    duplicate: int
    rejected: int
    lines: list[LineView]


def credit_view(event: Envelope[Any]) -> CreditView:
    fields = event.payload.model_dump()
    return CreditView(event_id=event.event_id, event_type=event.event_type, recorded_at=event.recorded_at,
                      **{name: value for name, value in fields.items() if name in CreditView.model_fields})


async def credit_notice(runtime: Any, tenant: str, notice: RecordPayment | CallbackNotice,
                        channel: PaymentChannel) -> operations.Credit:
    """Credit a payment (once per provider transaction); a notice naming a payment order settles it too, in the
    same transaction. Verified provider callbacks and the sandbox checkout's confirmations both come here."""
    settings, now = billing_settings(runtime.settings), runtime.clock.now()
    order_id = notice.order_id if isinstance(notice, CallbackNotice) else None
    with answering_refusals():
        payment = operations.payment_of(notice.account_id, channel, notice.provider_transaction_id, notice.amount,
                                        notice.currency, notice.paid_at, settings.currency_of(tenant), now)
        async with runtime.sessions() as session, session.begin():
            if order_id is not None:
                return await orders.credit_order(session, tenant, order_id, payment, now)
            return await operations.credit(session, tenant, payment, now)


async def _credit(runtime: Any, tenant: str, notice: RecordPayment | CallbackNotice, channel: PaymentChannel,
                  response: Response) -> CreditView:
    credit = await credit_notice(runtime, tenant, notice, channel)
    response.status_code = 201 if credit.new else 200
    return credit_view(credit.event)


CREDIT_DOCS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Credited by an earlier request: its answer again", "model": CreditView},
    **refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT, Refusal.INVALID),
}


@router.post("/payments", status_code=201, response_model=CreditView, responses=CREDIT_DOCS)
async def record_payment(body: RecordPayment, response: Response, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Credit a payment once per (channel, provider transaction id): 201 the first time, 200 with it after."""
    return await _credit(runtime, tenant, body, body.channel, response)


@router.post("/payments/callbacks/{provider}", openapi_extra=SIGNED_BY_PROVIDER, status_code=201,
             response_model=CreditView,
             responses={**CREDIT_DOCS, 401: {"description": "Signature or timestamp refused"},
                        404: {"description": "No secret is configured for this provider: its callbacks are not taken"}})
async def provider_callback(provider: CallbackProvider, request: Request, response: Response, runtime: RuntimeDep,
                            tenant: Tenant, x_amiflow_timestamp: Annotated[str | None, Header()] = None,
                            x_amiflow_signature: Annotated[str | None, Header()] = None) -> Any:
    """A provider's payment notice, verified (HMAC-SHA256 over timestamp + "." + body, 5 minutes) before anything."""
    body = await request.body()
    secret = billing_settings(runtime.settings).provider_secret(provider.value)
    with log_context(tenant_id=tenant):
        if secret is None:
            log.warning("payment callback from %s refused: no secret is configured for it", provider.value)
            # The caller's fault as far as this deployment goes (a 5xx would page the operators for it).
            raise HTTPException(404, detail={"problem": "provider_not_configured",
                                             "reason": f"callbacks of {provider.value} are not accepted here"})
        verdict = verify_callback(secret, x_amiflow_timestamp, x_amiflow_signature, body, runtime.clock.now())
        if verdict.problem is not None:
            # The reason only: never the secret, never the signature that was sent.
            log.warning("payment callback from %s refused: %s (%s)", provider.value, verdict.problem.value,
                        verdict.detail)
            raise HTTPException(401, detail={"problem": verdict.problem.value, "reason": verdict.detail})
    notice = validated(lambda: CallbackNotice.model_validate_json(body), "body")
    return await _credit(runtime, tenant, notice, PaymentChannel(provider.value), response)


async def _batch(runtime: Any, tenant: str, body: Batch, order: BatchOrder) -> BatchView:
    now = runtime.clock.now()
    outcomes = [await operations.credit_batch_line(runtime.sessions, tenant, order, number, line.model_dump(), now)
                for number, line in enumerate(body.lines, start=1)]
    counts = {status: sum(1 for o in outcomes if o.status is status) for status in LineStatus}
    return BatchView(batch_id=body.batch_id, accepted=counts[LineStatus.ACCEPTED],
                     duplicate=counts[LineStatus.DUPLICATE], rejected=counts[LineStatus.REJECTED],
                     lines=[LineView(**vars(o)) for o in outcomes])


def _order(runtime: Any, tenant: str, body: Batch, subsidy: bool) -> BatchOrder:
    currency = billing_settings(runtime.settings).currency_of(tenant)
    channel = body.channel if isinstance(body, RechargeBatch) else PaymentChannel.OPERATOR
    return BatchOrder(subsidy, body.batch_id, body.currency or currency, currency, channel)


@router.post("/recharges/batch", response_model=BatchView)
async def recharge_batch(body: RechargeBatch, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Credit each line as a payment, once per (batch id, line number); every line answered on its own."""
    return await _batch(runtime, tenant, body, _order(runtime, tenant, body, subsidy=False))


@router.post("/subsidies/batch", response_model=BatchView)
async def subsidy_batch(body: Batch, runtime: RuntimeDep, tenant: Tenant) -> Any:
    """Grant each line as a subsidy, once per (batch id, line number); every line answered on its own."""
    return await _batch(runtime, tenant, body, _order(runtime, tenant, body, subsidy=True))
