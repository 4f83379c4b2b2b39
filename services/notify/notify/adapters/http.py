"""Notify's API: contacts with their preferences, webhook subscriptions, and the delivery log."""

from __future__ import annotations

import secrets
from datetime import datetime, time
from typing import Annotated, Any
from uuid import UUID

from amiflow_runtime.auth import ACCOUNT_DATA, CONFIGURATION, Permission, needs
from amiflow_runtime.http import Caller, RuntimeDep, Tenant
from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from notify.adapters import db, store
from notify.adapters.store import Contact, Status
from notify.core.contacts import (
    InvalidContact,
    check_email,
    check_phone,
    check_time_zone,
    check_webhook_url,
    check_wechat_openid,
)
from notify.core.model import Audience, Channel, Language, Topic

router = APIRouter(prefix="/v1", tags=["notifications"])
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


def _checked(check: Any, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        checked: str = check(value)
    except InvalidContact as exc:
        raise ValueError(str(exc)) from None
    return checked


class ContactBody(BaseModel):
    """A customer's contact on an account, or an operator by role and site; addresses are checked when saved."""

    model_config = ConfigDict(extra="forbid")

    audience: Audience = Audience.CUSTOMER
    account_id: Id | None = None  # required for a customer
    role: Id | None = None  # an operator's role, e.g. "duty-engineer"
    site: Id | None = None  # an operator's site; None: every site
    name: Annotated[str, Field(max_length=200)] | None = None
    email: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None
    channels: list[Channel] = [Channel.SMS, Channel.EMAIL, Channel.WECHAT]
    language: Language = Language.ZH_CN
    quiet_start: time | None = Field(None, description="Routine messages wait from this local time …")
    quiet_end: time | None = Field(None, description="… to this one (may span midnight); critical ones never wait")
    time_zone: str | None = None
    opted_out: list[Topic] = []
    updated_by: Id

    _email = field_validator("email")(lambda v: _checked(check_email, v))
    _phone = field_validator("phone")(lambda v: _checked(check_phone, v))
    _openid = field_validator("wechat_openid")(lambda v: _checked(check_wechat_openid, v))
    _zone = field_validator("time_zone")(lambda v: _checked(check_time_zone, v))

    @model_validator(mode="after")
    def _coherent(self) -> ContactBody:
        if self.audience is Audience.CUSTOMER and self.account_id is None:
            raise ValueError("a customer's contact names its account_id")
        if self.audience is Audience.INTEGRATOR:
            raise ValueError("integrators subscribe webhooks at /v1/webhook-subscriptions")
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet hours need both quiet_start and quiet_end")
        if not (self.email or self.phone or self.wechat_openid):
            raise ValueError("a contact needs at least one of email, phone, wechat_openid")
        if Channel.WEBHOOK in self.channels:
            raise ValueError("webhooks are subscriptions, not a contact's channel")
        return self

    def contact(self) -> Contact:
        return Contact(name=self.name, email=self.email, phone=self.phone, wechat_openid=self.wechat_openid,
                       channels=tuple(self.channels), language=self.language, quiet_start=self.quiet_start,
                       quiet_end=self.quiet_end, time_zone=self.time_zone, opted_out=frozenset(self.opted_out))


class ContactView(BaseModel):
    contact_id: str
    audience: Audience
    account_id: str | None
    role: str | None
    site: str | None
    contact: Contact
    updated_by: str
    updated_at: datetime


@router.put("/contacts/{contact_id}", response_model=ContactView)
async def save_contact(contact_id: Annotated[str, Id], body: ContactBody, runtime: RuntimeDep,
                       tenant: Tenant) -> dict[str, Any]:
    """Create or replace a contact with its addresses, language, quiet hours and opt-outs."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await store.save_contact(session, tenant, contact_id, body.audience, body.account_id, body.role, body.site,
                                 body.contact(), body.updated_by, now)
        found = await store.contact(session, tenant, contact_id)
    assert found is not None
    return found


@router.get("/contacts/{contact_id}", response_model=ContactView, responses={404: {"description": "No such contact"}})
async def get_contact(contact_id: str, runtime: RuntimeDep, tenant: Tenant) -> dict[str, Any]:
    async with runtime.sessions() as session:
        found = await store.contact(session, tenant, contact_id)
    if found is None:
        raise HTTPException(404, detail={"problem": "unknown_contact", "reason": f"no contact {contact_id}"})
    return found


@router.delete("/contacts/{contact_id}", status_code=204, responses={404: {"description": "No such contact"}})
async def delete_contact(contact_id: str, runtime: RuntimeDep, tenant: Tenant) -> None:
    async with runtime.sessions() as session, session.begin():
        if not await store.remove_contact(session, tenant, contact_id):
            raise HTTPException(404, detail={"problem": "unknown_contact", "reason": f"no contact {contact_id}"})


@router.get("/accounts/{account_id}/contacts", openapi_extra=ACCOUNT_DATA, response_model=list[ContactView])
async def account_contacts(account_id: str, runtime: RuntimeDep, tenant: Tenant) -> list[dict[str, Any]]:
    """The contacts notify tells about an account."""
    async with runtime.sessions() as session:
        found = [await store.contact(session, tenant, contact_id)
                 for contact_id, _ in await store.contacts_of_account(session, tenant, account_id)]
    return [f for f in found if f is not None]


class OwnContactBody(BaseModel):
    """What an account holder may set of their own contact: where and how to be told (not whom it concerns)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] | None = None
    email: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None
    channels: list[Channel] = [Channel.SMS, Channel.EMAIL, Channel.WECHAT]
    language: Language = Language.ZH_CN
    quiet_start: time | None = None
    quiet_end: time | None = None
    time_zone: str | None = None
    opted_out: list[Topic] = []


# A customer may change their own account's contacts (the portal's notification preferences); staff need operate.
OWN_CONTACT = needs(Permission.OPERATE, customer_account_param="account_id")


@router.put("/accounts/{account_id}/contacts/{contact_id}", openapi_extra=OWN_CONTACT, response_model=ContactView,
            responses={404: {"description": "The contact belongs to another account"}})
async def save_own_contact(account_id: Annotated[str, Id], contact_id: Annotated[str, Id], body: OwnContactBody,
                           runtime: RuntimeDep, tenant: Tenant, caller: Caller) -> dict[str, Any]:
    """Create or replace a contact of this account, as the account holder (or staff for them): the same checks
    as `PUT /v1/contacts/{id}`, always a customer contact of this account, signed by the caller."""
    try:
        checked = ContactBody(audience=Audience.CUSTOMER, account_id=account_id, updated_by=caller.subject[:64],
                              **body.model_dump())
    except ValueError as exc:
        raise HTTPException(422, detail={"problem": "invalid_contact", "reason": str(exc)}) from None
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        existing = await store.contact(session, tenant, contact_id)
        if existing is not None and existing["account_id"] != account_id:
            # Another account's contact: the caller learns nothing of it.
            raise HTTPException(404, detail={"problem": "unknown_contact", "reason": f"no contact {contact_id}"})
        await store.save_contact(session, tenant, contact_id, Audience.CUSTOMER, account_id, None, None,
                                 checked.contact(), checked.updated_by, now)
        found = await store.contact(session, tenant, contact_id)
    assert found is not None
    return found


class SubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription_id: Id
    url: str
    topics: Annotated[list[Topic], Field(min_length=1)]
    created_by: Id

    _url = field_validator("url")(lambda v: _checked(check_webhook_url, v))


class SubscriptionView(BaseModel):
    subscription_id: str
    url: str
    topics: list[Topic]
    active: bool
    created_by: str
    created_at: datetime


class NewSubscriptionView(SubscriptionView):
    secret: str = Field(description="Verifies X-Amiflow-Signature: HMAC-SHA256(secret, timestamp + '.' + body). "
                                    "Shown only now.")


@router.post("/webhook-subscriptions", openapi_extra=CONFIGURATION, status_code=201, response_model=NewSubscriptionView,
             responses={409: {"description": "The subscription id is taken"}})
async def subscribe(body: SubscriptionBody, runtime: RuntimeDep, tenant: Tenant) -> dict[str, Any]:
    """Subscribe an integrator's endpoint to topics; every delivery is signed with the secret answered here."""
    secret, now = secrets.token_urlsafe(32), runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        if any(s["subscription_id"] == body.subscription_id for s in await store.subscriptions(session, tenant)):
            raise HTTPException(409, detail={"problem": "subscription_exists",
                                             "reason": f"subscription {body.subscription_id} exists"})
        await store.subscribe(session, tenant, body.subscription_id, body.url, body.topics, secret, body.created_by,
                              now)
    return {"subscription_id": body.subscription_id, "url": body.url, "topics": body.topics, "active": True,
            "created_by": body.created_by, "created_at": now, "secret": secret}


@router.get("/webhook-subscriptions", openapi_extra=CONFIGURATION, response_model=list[SubscriptionView])
async def list_subscriptions(runtime: RuntimeDep, tenant: Tenant) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        return await store.subscriptions(session, tenant)


@router.delete("/webhook-subscriptions/{subscription_id}", openapi_extra=CONFIGURATION, status_code=204,
               responses={404: {"description": "No such subscription"}})
async def unsubscribe(subscription_id: str, runtime: RuntimeDep, tenant: Tenant) -> None:
    async with runtime.sessions() as session, session.begin():
        if not await store.unsubscribe(session, tenant, subscription_id):
            raise HTTPException(404, detail={"problem": "unknown_subscription",
                                             "reason": f"no subscription {subscription_id}"})


class NotificationView(BaseModel):
    notification_id: UUID
    topic: str
    audience: str
    recipient_id: str
    channel: str
    subject_id: str
    account_id: str | None
    urgency: str
    status: str
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    provider_answer: str | None
    provider_message_id: str | None
    cause_event_id: UUID
    created_at: datetime
    sent_at: datetime | None


class AttemptView(BaseModel):
    attempt: int
    attempted_at: datetime
    delivered: bool
    retryable: bool
    provider_answer: str


class NotificationDetail(NotificationView):
    delivery_attempts: list[AttemptView]


STATUSES = (Status.QUEUED, Status.RETRYING, Status.SENT, Status.FAILED, Status.DEAD, Status.SUPPRESSED)


@router.get("/notifications", response_model=list[NotificationView])
async def notifications(runtime: RuntimeDep, tenant: Tenant, account_id: str | None = None,
                        status: Annotated[str | None, Query(description=", ".join(STATUSES))] = None,
                        since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                        until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The delivery log, newest first: every notification with its status and why."""
    if status is not None and status not in STATUSES:
        raise HTTPException(422, detail={"problem": "unknown_status", "reason": f"status is one of {STATUSES}"})
    async with runtime.sessions() as session:
        return await store.log(session, tenant, account_id=account_id, status=status, since=since, until=until,
                               limit=limit)


@router.get("/notifications/{notification_id}", response_model=NotificationDetail,
            responses={404: {"description": "No such notification"}})
async def notification(notification_id: UUID, runtime: RuntimeDep, tenant: Tenant) -> dict[str, Any]:
    """One notification with every delivery attempt and the provider's answers."""
    async with runtime.sessions() as session:
        found = await store.notification_row(session, tenant, str(notification_id))
        if found is None:
            raise HTTPException(404, detail={"problem": "unknown_notification",
                                             "reason": f"no notification {notification_id}"})
        return {**found, "delivery_attempts": await store.attempts(session, tenant, str(notification_id))}


@router.get("/triggers", include_in_schema=False)
async def triggers(runtime: RuntimeDep, tenant: Tenant, subject_id: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, object]]:
    """The events notify recorded as calling for a notification (kept for the walking skeleton's checks)."""
    async with runtime.sessions() as session:
        return await db.recent(session, tenant, subject_id, limit)
