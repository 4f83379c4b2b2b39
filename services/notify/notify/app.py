"""Notify's handlers: an event that calls for a notification is planned for its recipients and logged
(the log is the delivery queue), in the pipeline's transaction; the daily reminder and the alarm digest
run on timers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_runtime.clock import Clock
from amiflow_runtime.pipeline import Handler
from amiflow_schemas import Envelope, event_class
from amiflow_schemas.events.billing import BalanceDepleted, BalanceLow, BalanceRestored, PaymentReceived
from sqlalchemy.ext.asyncio import AsyncSession

from notify.adapters import db, store
from notify.adapters.store import Status
from notify.config import NotifySettings
from notify.core.model import Audience, BalanceStatus, Channel, Language, Notification, Recipient, Subject, Topic
from notify.core.planning import digest, plan
from notify.core.reminders import balance_status_after, reminder_cause_id, reminder_due, reminder_subject
from notify.core.subjects import event_context, local_day, subject_of
from notify.core.triggers import trigger_for

log = logging.getLogger("notify")
BALANCE_EVENTS = (BalanceLow, BalanceDepleted, BalanceRestored, PaymentReceived)


async def recipients_for(session: AsyncSession, tenant_id: str, subject: Subject, zone: str) -> list[Recipient]:
    """Everyone the subject's audiences reach: the account's contacts, the operators, the webhook subscribers."""
    found: list[Recipient] = []
    if Audience.CUSTOMER in subject.audiences and subject.account_id is not None:
        for contact_id, contact in await store.contacts_of_account(session, tenant_id, subject.account_id):
            found += contact.recipients(contact_id, Audience.CUSTOMER, zone)
    if Audience.OPERATOR in subject.audiences:
        for contact_id, contact in await store.operators(session, tenant_id):
            found += contact.recipients(contact_id, Audience.OPERATOR, zone)
    # Integrators choose their topics themselves, whatever audience the topic is meant for.
    found += [Recipient(recipient_id=s["subscription_id"], audience=Audience.INTEGRATOR, channel=Channel.WEBHOOK,
                        address=s["url"], language=Language.EN, secret_ref=s["subscription_id"])
              for s in await store.subscriptions(session, tenant_id, subject.topic)]
    return found


async def enqueue(session: AsyncSession, subject: Subject, tenant_id: str, cause_event_id: Any, now: datetime,
                  zone: ZoneInfo, context: dict[str, Any], settings: NotifySettings) -> int:
    """Plan the subject for its recipients and log each notification once (dedupe key); returns how many."""
    recipients = await recipients_for(session, tenant_id, subject, zone.key)
    planned = plan(subject, recipients, tenant_id=tenant_id, cause_event_id=cause_event_id, now=now, zone=zone,
                   context=context)
    logged = 0
    for notification in planned:
        if _digestible(notification):
            # A routine operator alarm waits a moment: if many come at once they go out as one digest.
            later = max(notification.not_before, now + timedelta(seconds=settings.alarm_digest_window_s))
            notification = _with_not_before(notification, later)
        logged += await store.enqueue(session, notification, now)
    return logged


def _digestible(notification: Notification) -> bool:
    return (notification.topic is Topic.ALARM_RAISED and notification.recipient.audience is Audience.OPERATOR
            and notification.urgency.value == "routine" and notification.suppressed is None)


def _with_not_before(notification: Notification, at: datetime) -> Notification:
    return replace(notification, not_before=at)


def notification_handler(clock: Clock, settings: NotifySettings) -> Handler:
    """Balance, payment, alarm and command-escalation events → notifications in the delivery log."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload, tenant, now = envelope.payload, envelope.tenant_id, clock.now()
        trigger = trigger_for(payload)
        if trigger is not None:  # the raw trigger record stays: operators search it by subject
            await db.record(session, event_id=envelope.event_id, tenant_id=tenant, event_type=envelope.event_type,
                            trigger=trigger, occurred_at=envelope.occurred_at, recorded_at=now)
        zone = ZoneInfo(settings.zone_of(tenant))
        if isinstance(payload, BALANCE_EVENTS):
            await _track_balance(session, tenant, payload, envelope.occurred_at)
        subject = subject_of(payload, zone=zone)
        if subject is None:
            return []
        await enqueue(session, subject, tenant, envelope.event_id, now, zone, event_context(payload), settings)
        return []

    return handle


async def _track_balance(session: AsyncSession, tenant_id: str, payload: Any, occurred_at: datetime) -> None:
    """Keep the account's balance state for the daily reminder, with the event that put it there."""
    found = await store.account_state(session, tenant_id, payload.account_id)
    before = BalanceStatus(found["state"]) if found else BalanceStatus.NORMAL
    after = balance_status_after(before, payload)
    if found is not None and after is before:
        return
    at = getattr(payload, "entered_at", None) or getattr(payload, "depleted_at", None) \
        or getattr(payload, "restored_at", None) or getattr(payload, "paid_at", None) or occurred_at
    event = json.dumps({"event_type": type(payload).EVENT_TYPE, "payload": payload.model_dump(mode="json")})
    # Back to normal keeps the last low or depleted event: nothing reads it until the account is low again.
    kept = event if after is not BalanceStatus.NORMAL or found is None else found["last_event"]
    await store.set_account_state(session, tenant_id, payload.account_id, after.value, at, kept)


async def send_reminders(sessions: Any, clock: Clock, settings: NotifySettings) -> int:
    """The daily low-balance reminder of every account that stays low or depleted; returns how many."""
    now, sent = clock.now(), 0
    async with sessions() as session:
        accounts = await store.low_accounts(session)
    for row in accounts:
        zone = ZoneInfo(settings.zone_of(row["tenant_id"]))
        if not reminder_due(BalanceStatus(row["state"]), row["last_reminded_on"], now, zone, settings.reminder_at,
                            state_since=row["since"]):
            continue
        stored = json.loads(row["last_event"])
        last = event_class(stored["event_type"]).model_validate(stored["payload"])
        if not isinstance(last, BalanceLow | BalanceDepleted):
            continue
        day = local_day(now, zone)
        async with sessions() as session, session.begin():
            subject = reminder_subject(last, now, zone)
            await enqueue(session, subject, row["tenant_id"], reminder_cause_id(row["tenant_id"], row["account_id"],
                                                                                 day),
                          now, zone, event_context(last), settings)
            await store.reminded(session, row["tenant_id"], row["account_id"], day)
        sent += 1
    return sent


async def gather_digests(sessions: Any, clock: Clock, settings: NotifySettings) -> int:
    """Fold an operator's burst of routine alarms into one digest before they go out; returns digests made."""
    now, made = clock.now(), 0
    window = timedelta(seconds=settings.alarm_digest_window_s)
    async with sessions() as session, session.begin():
        pending = await store.pending_operator_alarms(session, now + window)
        by_recipient: dict[tuple[str, str, str], list[Notification]] = {}
        for row in pending:
            by_recipient.setdefault((row.tenant_id, row.recipient_id, row.channel), []).append(
                store.notification_of(row))
        for notes in by_recipient.values():
            found = digest(notes, now=now, window=window, threshold=settings.alarm_digest_threshold)
            if found is None:
                continue
            if await store.enqueue(session, found.notification, now):
                for included in found.included:
                    await store.settle(session, included.tenant_id, str(included.notification_id), Status.SUPPRESSED,
                                       f"included in digest {found.notification.notification_id}", now)
                made += 1
    return made
