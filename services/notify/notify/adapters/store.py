"""Notify's tables: contacts with their preferences, webhook subscriptions, the notification log (the
delivery queue itself: a row waits until its next attempt) with every attempt, and the balance state
of each account for the daily reminder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from amiflow_runtime.db import UtcDateTime
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, Column, Date, Integer, String, Table, Text, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notify.adapters.db import metadata
from notify.core.model import Audience, Channel, Language, Notification, QuietHours, Recipient, Topic, Urgency

contacts = Table(
    "contacts", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("contact_id", String(64), primary_key=True),
    Column("audience", String(16), nullable=False),
    Column("account_id", String(64)),
    Column("role", String(64)),
    Column("site", String(64)),
    Column("document", Text, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("subscription_id", String(64), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("topics", Text, nullable=False),
    Column("secret", String(200), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)
notifications = Table(
    "notifications", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("notification_id", String(36), primary_key=True),
    Column("topic", String(32), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("recipient_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("subject_id", String(128), nullable=False),
    Column("account_id", String(64)),
    Column("dedupe_key", String(200), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    Column("lease_until", UtcDateTime()),
    Column("cause_event_id", String(36), nullable=False),
    Column("document", Text, nullable=False),
    Column("provider_answer", Text),
    Column("provider_message_id", String(200)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
)
delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("notification_id", String(36), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempted_at", UtcDateTime(), nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("retryable", Boolean, nullable=False),
    Column("provider_answer", Text, nullable=False),
)
account_states = Table(
    "account_states", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("since", UtcDateTime(), nullable=False),
    Column("last_event", Text, nullable=False),
    Column("last_reminded_on", Date),
)


class Status:
    """Where a notification is; the log keeps every one, suppressed ones with their reason."""

    QUEUED = "queued"  # waits for its first attempt (or the end of quiet hours)
    RETRYING = "retrying"  # an attempt failed and another is due
    SENT = "sent"
    FAILED = "failed"  # no attempt can help (bad address, template failed); reason says why
    DEAD = "dead"  # the last retry failed: dead-lettered
    SUPPRESSED = "suppressed"  # never sent: opted out, duplicate, in a digest; reason says why

    WAITING = (QUEUED, RETRYING)


class Contact(BaseModel):
    """A customer's or an operator's addresses and preferences, as saved by the API (validated there)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    email: str | None = None
    phone: str | None = None  # E.164
    wechat_openid: str | None = None
    channels: tuple[Channel, ...] = (Channel.SMS, Channel.EMAIL, Channel.WECHAT)  # the ones to use, if addressed
    language: Language = Language.ZH_CN
    quiet_start: time | None = None
    quiet_end: time | None = None
    time_zone: str | None = None  # None: the tenant's
    opted_out: frozenset[Topic] = Field(default_factory=frozenset)

    def recipients(self, contact_id: str, audience: Audience, tenant_zone: str) -> list[Recipient]:
        """One recipient per channel the contact uses and has an address for."""
        zone = self.time_zone or tenant_zone
        quiet = QuietHours(self.quiet_start, self.quiet_end, zone) \
            if self.quiet_start is not None and self.quiet_end is not None else None
        addresses = {Channel.EMAIL: self.email, Channel.SMS: self.phone, Channel.WECHAT: self.wechat_openid}
        return [Recipient(recipient_id=contact_id, audience=audience, channel=channel, address=address,
                          language=self.language, quiet_hours=quiet, opted_out=self.opted_out)
                for channel in self.channels if (address := addresses.get(channel))]


async def save_contact(session: AsyncSession, tenant_id: str, contact_id: str, audience: Audience,
                       account_id: str | None, role: str | None, site: str | None, contact: Contact, by: str,
                       now: datetime) -> None:
    await session.execute(delete(contacts).where(contacts.c.tenant_id == tenant_id,
                                                 contacts.c.contact_id == contact_id))
    await session.execute(insert(contacts).values(
        tenant_id=tenant_id, contact_id=contact_id, audience=audience.value, account_id=account_id, role=role,
        site=site, document=contact.model_dump_json(), updated_by=by, updated_at=now))


async def contact(session: AsyncSession, tenant_id: str, contact_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(contacts).where(contacts.c.tenant_id == tenant_id,
                                                        contacts.c.contact_id == contact_id))).first()
    if row is None:
        return None
    return {**row._asdict(), "contact": Contact.model_validate_json(row.document)}


async def remove_contact(session: AsyncSession, tenant_id: str, contact_id: str) -> bool:
    result = await session.execute(delete(contacts).where(contacts.c.tenant_id == tenant_id,
                                                          contacts.c.contact_id == contact_id))
    return bool(getattr(result, "rowcount", 0))


async def contacts_of_account(session: AsyncSession, tenant_id: str, account_id: str) -> list[tuple[str, Contact]]:
    rows = await session.execute(select(contacts.c.contact_id, contacts.c.document).where(
        contacts.c.tenant_id == tenant_id, contacts.c.account_id == account_id,
        contacts.c.audience == Audience.CUSTOMER.value).order_by(contacts.c.contact_id))
    return [(r.contact_id, Contact.model_validate_json(r.document)) for r in rows]


async def operators(session: AsyncSession, tenant_id: str, site: str | None = None) -> list[tuple[str, Contact]]:
    """The tenant's operators; with a site, those of that site and those of every site."""
    query = select(contacts.c.contact_id, contacts.c.document).where(
        contacts.c.tenant_id == tenant_id, contacts.c.audience == Audience.OPERATOR.value)
    if site is not None:
        query = query.where(or_(contacts.c.site.is_(None), contacts.c.site == site))
    rows = await session.execute(query.order_by(contacts.c.contact_id))
    return [(r.contact_id, Contact.model_validate_json(r.document)) for r in rows]


async def subscribe(session: AsyncSession, tenant_id: str, subscription_id: str, url: str, topics: Sequence[Topic],
                    secret: str, by: str, now: datetime) -> None:
    await session.execute(insert(webhook_subscriptions).values(
        tenant_id=tenant_id, subscription_id=subscription_id, url=url, topics=json.dumps([t.value for t in topics]),
        secret=secret, active=True, created_by=by, created_at=now))


async def subscriptions(session: AsyncSession, tenant_id: str, topic: Topic | None = None) -> list[dict[str, Any]]:
    """Active webhook subscriptions (all, or those of a topic); the secret stays in the row for signing."""
    rows = await session.execute(select(webhook_subscriptions).where(
        webhook_subscriptions.c.tenant_id == tenant_id, webhook_subscriptions.c.active.is_(True)).order_by(
        webhook_subscriptions.c.subscription_id))
    found = [{**r._asdict(), "topics": [Topic(t) for t in json.loads(r.topics)]} for r in rows]
    return [s for s in found if topic is None or topic in s["topics"]]


async def subscription_secret(session: AsyncSession, tenant_id: str, subscription_id: str) -> str | None:
    row = (await session.execute(select(webhook_subscriptions.c.secret).where(
        webhook_subscriptions.c.tenant_id == tenant_id,
        webhook_subscriptions.c.subscription_id == subscription_id))).first()
    return None if row is None else str(row.secret)


async def unsubscribe(session: AsyncSession, tenant_id: str, subscription_id: str) -> bool:
    result = await session.execute(update(webhook_subscriptions).where(
        webhook_subscriptions.c.tenant_id == tenant_id,
        webhook_subscriptions.c.subscription_id == subscription_id).values(active=False))
    return bool(getattr(result, "rowcount", 0))


def _document(n: Notification) -> str:
    recipient = asdict(n.recipient)
    recipient["opted_out"] = sorted(t.value for t in n.recipient.opted_out)
    if n.recipient.quiet_hours is not None:
        q = n.recipient.quiet_hours
        recipient["quiet_hours"] = {"start": q.start.isoformat(), "end": q.end.isoformat(), "time_zone": q.time_zone}
    return json.dumps({"recipient": recipient, "context": n.context, "not_before": n.not_before.isoformat(),
                       "created_at": n.created_at.isoformat()}, default=str, ensure_ascii=False)


def notification_of(row: Any) -> Notification:
    """A logged notification back as the core's value, to render and send it."""
    doc = json.loads(row.document)
    r = doc["recipient"]
    quiet = r.get("quiet_hours")
    recipient = Recipient(
        recipient_id=r["recipient_id"], audience=Audience(r["audience"]), channel=Channel(r["channel"]),
        address=r["address"], language=Language(r["language"]),
        quiet_hours=QuietHours(time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"]),
                               quiet["time_zone"]) if quiet else None,
        opted_out=frozenset(Topic(t) for t in r.get("opted_out", ())), secret_ref=r.get("secret_ref"))
    return Notification(
        notification_id=UUID(row.notification_id), tenant_id=row.tenant_id, topic=Topic(row.topic),
        recipient=recipient, subject_id=row.subject_id, account_id=row.account_id, dedupe_key=row.dedupe_key,
        urgency=Urgency(row.urgency), not_before=datetime.fromisoformat(doc["not_before"]),
        cause_event_id=UUID(row.cause_event_id), created_at=datetime.fromisoformat(doc["created_at"]),
        context=doc["context"], suppressed=row.reason if row.status == Status.SUPPRESSED else None)


async def enqueue(session: AsyncSession, n: Notification, now: datetime) -> bool:
    """Log a planned notification; False when one with its dedupe key (or id) is already logged."""
    key = and_(notifications.c.tenant_id == n.tenant_id, or_(
        notifications.c.notification_id == str(n.notification_id),
        and_(notifications.c.dedupe_key == n.dedupe_key, notifications.c.recipient_id == n.recipient.recipient_id,
             notifications.c.channel == n.recipient.channel.value)))
    if (await session.execute(select(notifications.c.notification_id).where(key))).first() is not None:
        return False
    suppressed = n.suppressed is not None
    await session.execute(insert(notifications).values(
        tenant_id=n.tenant_id, notification_id=str(n.notification_id), topic=n.topic.value,
        audience=n.recipient.audience.value, recipient_id=n.recipient.recipient_id,
        channel=n.recipient.channel.value, subject_id=n.subject_id, account_id=n.account_id,
        dedupe_key=n.dedupe_key, urgency=n.urgency.value,
        status=Status.SUPPRESSED if suppressed else Status.QUEUED, reason=n.suppressed, attempts=0,
        next_attempt_at=None if suppressed else n.not_before, lease_until=None,
        cause_event_id=str(n.cause_event_id), document=_document(n), provider_answer=None,
        provider_message_id=None, created_at=now, updated_at=now, sent_at=None))
    return True


async def due(session: AsyncSession, now: datetime, limit: int) -> list[Any]:
    """Notifications whose next attempt is due and that no worker holds, the oldest due first."""
    query = select(notifications).where(
        notifications.c.status.in_(Status.WAITING), notifications.c.next_attempt_at <= now,
        or_(notifications.c.lease_until.is_(None), notifications.c.lease_until < now)).order_by(
        notifications.c.next_attempt_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":  # two workers never take the same row
        query = query.with_for_update(skip_locked=True)
    return list(await session.execute(query))


async def pending_operator_alarms(session: AsyncSession, due_by: datetime) -> list[Any]:
    """Routine operator alarm notifications still waiting, due by ``due_by`` (digest candidates)."""
    rows = await session.execute(select(notifications).where(
        notifications.c.status == Status.QUEUED, notifications.c.topic == Topic.ALARM_RAISED.value,
        notifications.c.audience == Audience.OPERATOR.value, notifications.c.next_attempt_at <= due_by,
        notifications.c.lease_until.is_(None)).order_by(notifications.c.next_attempt_at))
    return list(rows)


async def lease(session: AsyncSession, tenant_id: str, notification_id: str, until: datetime) -> None:
    """Hold a notification while it is being sent; a crashed worker's hold runs out and it is sent again."""
    await session.execute(update(notifications).where(
        notifications.c.tenant_id == tenant_id, notifications.c.notification_id == notification_id).values(
        lease_until=until))


async def record_attempt(session: AsyncSession, tenant_id: str, notification_id: str, attempt: int,
                         at: datetime, delivered: bool, retryable: bool, answer: str, status: str,
                         reason: str | None, next_attempt_at: datetime | None,
                         provider_message_id: str | None) -> None:
    await session.execute(insert(delivery_attempts).values(
        tenant_id=tenant_id, notification_id=notification_id, attempt=attempt, attempted_at=at, delivered=delivered,
        retryable=retryable, provider_answer=answer))
    await session.execute(update(notifications).where(
        notifications.c.tenant_id == tenant_id, notifications.c.notification_id == notification_id).values(
        status=status, reason=reason, attempts=attempt, next_attempt_at=next_attempt_at, lease_until=None,
        provider_answer=answer, provider_message_id=provider_message_id, updated_at=at,
        sent_at=at if delivered else None))


async def settle(session: AsyncSession, tenant_id: str, notification_id: str, status: str, reason: str,
                 now: datetime) -> None:
    """End a notification without an attempt (its template failed, it went into a digest)."""
    await session.execute(update(notifications).where(
        notifications.c.tenant_id == tenant_id, notifications.c.notification_id == notification_id).values(
        status=status, reason=reason, next_attempt_at=None, lease_until=None, updated_at=now))


async def log(session: AsyncSession, tenant_id: str, *, account_id: str | None = None, status: str | None = None,
              since: datetime | None = None, until: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The delivery log, newest first."""
    query = select(notifications).where(notifications.c.tenant_id == tenant_id)
    if account_id is not None:
        query = query.where(notifications.c.account_id == account_id)
    if status is not None:
        query = query.where(notifications.c.status == status)
    if since is not None:
        query = query.where(notifications.c.created_at >= since)
    if until is not None:
        query = query.where(notifications.c.created_at < until)
    rows = await session.execute(query.order_by(notifications.c.created_at.desc(),
                                                notifications.c.notification_id).limit(limit))
    return [r._asdict() for r in rows]


async def notification_row(session: AsyncSession, tenant_id: str, notification_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(notifications).where(
        notifications.c.tenant_id == tenant_id, notifications.c.notification_id == notification_id))).first()
    return None if row is None else dict(row._asdict())


async def attempts(session: AsyncSession, tenant_id: str, notification_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(select(delivery_attempts).where(
        delivery_attempts.c.tenant_id == tenant_id, delivery_attempts.c.notification_id == notification_id).order_by(
        delivery_attempts.c.attempt))
    return [r._asdict() for r in rows]


async def account_state(session: AsyncSession, tenant_id: str, account_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(account_states).where(
        account_states.c.tenant_id == tenant_id, account_states.c.account_id == account_id))).first()
    return None if row is None else row._asdict()


async def set_account_state(session: AsyncSession, tenant_id: str, account_id: str, state: str, since: datetime,
                            last_event: str) -> None:
    """The account's balance state from its newest balance event (an older one changes nothing)."""
    found = await account_state(session, tenant_id, account_id)
    if found is None:
        await session.execute(insert(account_states).values(tenant_id=tenant_id, account_id=account_id, state=state,
                                                            since=since, last_event=last_event,
                                                            last_reminded_on=None))
    elif since >= found["since"]:
        await session.execute(update(account_states).where(
            account_states.c.tenant_id == tenant_id, account_states.c.account_id == account_id).values(
            state=state, since=since, last_event=last_event))


async def low_accounts(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(select(account_states).where(account_states.c.state.in_(("low", "depleted"))))
    return [r._asdict() for r in rows]


async def reminded(session: AsyncSession, tenant_id: str, account_id: str, day: date) -> None:
    await session.execute(update(account_states).where(
        account_states.c.tenant_id == tenant_id, account_states.c.account_id == account_id).values(
        last_reminded_on=day))
