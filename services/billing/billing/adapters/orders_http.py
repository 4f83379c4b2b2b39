"""Payment orders — how a customer pays on the phone — and the sandbox checkout that stands in for the
providers' apps where they cannot be reached (development, the browser tests).

A customer (for their own account) or an operator creates an order; the payer pays it in the provider's
checkout, and the provider's signed callback naming the order credits the account and settles the order.
The sandbox's confirmation is that callback without the provider: the same `credit_notice`, with
provider transaction id ``sandbox-<order_id>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from amiflow_runtime.auth import ACCOUNT_DATA, Permission, needs
from amiflow_runtime.http import Caller, RuntimeDep, Tenant
from amiflow_schemas.events.billing import PaymentChannel
from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from billing import operations, orders
from billing.adapters import order_store
from billing.adapters.payments_http import Amount, CallbackNotice, credit_notice
from billing.adapters.web import answering_refusals, billing_settings, refusal_docs
from billing.config import BillingSettings
from billing.core.payment_orders import CheckoutProvider, OrderState, PaymentOrder
from billing.operations import Refusal, as_money

router = APIRouter(prefix="/v1", tags=["payment orders"])

# A customer for their own account, or anyone who may operate (take payments).
OWN_ACCOUNT_OR_OPERATE = needs(Permission.OPERATE, customer_account_param="account_id")
# The order's own customer or an operator; the path names no account, so the route checks the order's.
ORDER_PAYER_OR_OPERATE = needs(Permission.OPERATE, Permission.OWN_ACCOUNT)
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    provider: CheckoutProvider
    idempotency_key: IdempotencyKey | None = Field(
        None, description="The same key (per account) answers the order it created, with 200")


class Checkout(BaseModel):
    """How the payer pays: in the sandbox, by POSTing to ``confirm_path`` (the provider's app, simulated)."""

    kind: Literal["sandbox"]
    confirm_path: str


class OrderView(BaseModel):
    order_id: str
    account_id: str
    amount: Decimal
    currency: str
    provider: CheckoutProvider
    state: OrderState  # pending, paid, paid_late (paid after it expired) or expired
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None  # the provider's payment time
    payment_event_id: UUID | None  # the PaymentReceived that credited it
    checkout: Checkout | None  # while pending


class OrderList(BaseModel):
    items: list[OrderView]  # newest first


def _checkout_configured(settings: BillingSettings, provider: CheckoutProvider) -> bool:
    """True when payers can be sent to a checkout of ``provider``.

    Only the sandbox exists: a real provider's checkout (its order API, merchant keys) is not built, so
    without the sandbox no provider is available.
    """
    return settings.sandbox_checkout


def _checkout(settings: BillingSettings, order: PaymentOrder) -> Checkout | None:
    if not _checkout_configured(settings, order.provider):
        return None
    return Checkout(kind="sandbox", confirm_path=f"/v1/payment-sandbox/{order.order_id}/confirm")


def order_view(order: PaymentOrder, settings: BillingSettings, now: datetime) -> OrderView:
    """The order as readers see it at ``now``; its times in UTC, as stored, whether new or read back."""
    state = order.state_at(now)
    return OrderView(order_id=order.order_id, account_id=order.account_id, amount=as_money(order.amount),
                     currency=order.currency, provider=order.provider, state=state,
                     created_at=order.created_at.astimezone(UTC), expires_at=order.expires_at.astimezone(UTC),
                     paid_at=order.paid_at.astimezone(UTC) if order.paid_at else None,
                     payment_event_id=order.payment_event_id,
                     checkout=_checkout(settings, order) if state is OrderState.PENDING else None)


@router.post("/accounts/{account_id}/payment-orders", openapi_extra=OWN_ACCOUNT_OR_OPERATE, status_code=201,
             response_model=OrderView,
             responses={200: {"description": "Created by an earlier request with this idempotency key",
                              "model": OrderView},
                        **refusal_docs(Refusal.NOT_FOUND, Refusal.CONFLICT, Refusal.INVALID)})
async def create_order(account_id: str, body: NewOrder, response: Response, runtime: RuntimeDep,
                       tenant: Tenant) -> Any:
    """A pending order to pay ``amount`` into the account through the provider; it expires in 15 minutes."""
    settings, now = billing_settings(runtime.settings), runtime.clock.now()
    if not _checkout_configured(settings, body.provider):
        raise HTTPException(422, detail={"problem": "provider_unavailable", "reason": (
            f"no checkout with {body.provider.value} is configured here: this deployment has no merchant "
            "integration with the provider (BILLING_PAYMENT_SANDBOX=true offers the sandbox checkout outside "
            "production)")})
    with answering_refusals():
        async with runtime.sessions() as session, session.begin():
            order, new = await orders.create_order(session, tenant, account_id, body.amount, body.provider,
                                                   body.idempotency_key, settings.payment_order_max_amount, now)
    response.status_code = 201 if new else 200
    return order_view(order, settings, now)


@router.get("/accounts/{account_id}/payment-orders", openapi_extra=ACCOUNT_DATA, response_model=OrderList,
            responses=refusal_docs(Refusal.NOT_FOUND))
async def list_orders(account_id: str, runtime: RuntimeDep, tenant: Tenant,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Any:
    """The account's payment orders, newest first."""
    settings, now = billing_settings(runtime.settings), runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session:
            await operations.account_of(session, tenant, account_id)
            found = await order_store.orders_of(session, tenant, account_id, limit)
    return OrderList(items=[order_view(order, settings, now) for order in found])


@router.get("/accounts/{account_id}/payment-orders/{order_id}", openapi_extra=ACCOUNT_DATA,
            response_model=OrderView, responses=refusal_docs(Refusal.NOT_FOUND))
async def get_order(account_id: str, order_id: str, runtime: RuntimeDep, tenant: Tenant) -> Any:
    settings, now = billing_settings(runtime.settings), runtime.clock.now()
    with answering_refusals():
        async with runtime.sessions() as session:
            order = await orders.order_of(session, tenant, order_id, account_id)
    return order_view(order, settings, now)


@router.post("/payment-sandbox/{order_id}/confirm", openapi_extra=ORDER_PAYER_OR_OPERATE, response_model=OrderView,
             responses={404: {"description": "No such order (or not the caller's), or the sandbox is off"},
                        **refusal_docs(Refusal.CONFLICT, Refusal.INVALID)})
async def confirm_in_sandbox(order_id: str, runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> Any:
    """The payer confirms the order in the (simulated) provider's app: credited as a verified callback would be."""
    settings = billing_settings(runtime.settings)
    if not settings.sandbox_checkout:
        raise HTTPException(404, detail={"problem": "sandbox_disabled",
                                         "reason": "the sandbox checkout is not enabled here"})
    with answering_refusals():
        async with runtime.sessions() as session:
            # A customer confirms their own orders only; another's is "not found", as on the account routes.
            mine = None if caller.may(Permission.OPERATE) else caller.account_id or ""
            order = await orders.order_of(session, tenant, order_id, mine)
    notice = CallbackNotice(account_id=order.account_id, provider_transaction_id=f"sandbox-{order.order_id}",
                            amount=as_money(order.amount), currency=order.currency, paid_at=runtime.clock.now(),
                            order_id=order.order_id)
    await credit_notice(runtime, tenant, notice, PaymentChannel(order.provider.value))
    with answering_refusals():
        async with runtime.sessions() as session:
            settled = await orders.order_of(session, tenant, order_id)
    return order_view(settled, settings, runtime.clock.now())
