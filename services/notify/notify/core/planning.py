"""From a subject and its recipients to notifications: ids, suppression, quiet hours, digests.

Ids are derived, not drawn: (cause event, recipient, channel) always plans the same notification
id, so a redelivered event is an idempotent insert. Suppressed notifications are planned too, with
the reason, so the delivery log can say why someone was not told.

Opt-outs hold for routine topics only. A critical message (a depleted balance before a cut-off, a
failed cut-off or restore, a critical alarm) is one the utility owes the customer or operator, and
quiet hours do not hold it either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from notify.core.model import Audience, Channel, Notification, QuietHours, Recipient, Subject, Topic, Urgency
from notify.core.reminders import NOTIFY_NAMESPACE, reminder_due
from notify.core.subjects import subject_of

__all__ = ["DIGESTIBLE", "Digest", "digest", "notification_id_for", "plan", "quiet_hours_end", "reminder_due",
           "subject_of"]

# Operator alarms that may be gathered into one digest (CommandEscalated is the alarm of commands).
DIGESTIBLE = frozenset({Topic.ALARM_RAISED, Topic.ALARM_CLEARED, Topic.COMMAND_FAILED})


def plan(subject: Subject, recipients: Sequence[Recipient], *, tenant_id: str, cause_event_id: UUID,
         now: datetime, zone: ZoneInfo, context: dict[str, Any]) -> list[Notification]:
    """One notification per recipient address in the subject's audiences; others are not planned.

    ``zone`` is the tenant's: times in a message are printed in the recipient's zone, else the
    zone of its quiet hours, else this one. A recipient listed twice is planned once.
    """
    _require_aware(now)
    planned: dict[UUID, Notification] = {}
    for recipient in recipients:
        notification_id = notification_id_for(cause_event_id, recipient.recipient_id, recipient.channel)
        if recipient.audience not in subject.audiences or notification_id in planned:
            continue
        planned[notification_id] = Notification(
            notification_id=notification_id, tenant_id=tenant_id, topic=subject.topic, recipient=recipient,
            subject_id=subject.subject_id, account_id=subject.account_id, dedupe_key=subject.dedupe_key,
            urgency=subject.urgency, not_before=_not_before(subject.urgency, recipient.quiet_hours, now),
            cause_event_id=cause_event_id, created_at=now,
            context={**context, "time_zone": _display_zone(recipient, zone)},
            suppressed=_suppression(subject, recipient))
    return list(planned.values())


def notification_id_for(cause_event_id: UUID, recipient_id: str, channel: Channel) -> UUID:
    """The id of the notification a cause plans for one recipient address."""
    return uuid5(NOTIFY_NAMESPACE, f"{cause_event_id}|{recipient_id}|{channel.value}")


def _suppression(subject: Subject, recipient: Recipient) -> str | None:
    if not recipient.address.strip():
        return f"no {recipient.channel.value} address"
    if subject.topic in recipient.opted_out and subject.urgency is not Urgency.CRITICAL:
        return f"opted out of {subject.topic.value}"
    return None


def _not_before(urgency: Urgency, quiet_hours: QuietHours | None, now: datetime) -> datetime:
    if urgency is Urgency.CRITICAL or quiet_hours is None:
        return now
    return quiet_hours_end(quiet_hours, now) or now


def quiet_hours_end(quiet_hours: QuietHours, now: datetime) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (as UTC), or None outside them.

    Local wall-clock hours: 21:00-08:00 spans midnight, so 23:30 and 06:00 both wait for 08:00.
    Equal start and end mean no quiet hours.
    """
    _require_aware(now)
    zone = ZoneInfo(quiet_hours.time_zone)
    local = now.astimezone(zone)
    start, end, wall = quiet_hours.start, quiet_hours.end, local.time()
    if start < end:
        inside, end_day = start <= wall < end, local.date()
    elif start > end:
        inside = wall >= start or wall < end
        end_day = local.date() + timedelta(days=1) if wall >= start else local.date()
    else:
        return None
    if not inside:
        return None
    # Through UTC: aware datetimes sharing one tzinfo compare by wall time, which is wrong in a DST fold.
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def _display_zone(recipient: Recipient, zone: ZoneInfo) -> str:
    if recipient.time_zone:
        return recipient.time_zone
    if recipient.quiet_hours is not None:
        return recipient.quiet_hours.time_zone
    return zone.key


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")


@dataclass(frozen=True)
class Digest:
    """One message listing many pending alarms, and those alarms, suppressed as included in it."""

    notification: Notification
    included: tuple[Notification, ...]


def digest(pending: Sequence[Notification], *, now: datetime, window: timedelta, threshold: int) -> Digest | None:
    """Gather one recipient's pending operator alarms due within ``window`` when more than ``threshold`` are.

    Webhooks are never digested: integrators' machines want each alarm on its own. The digest is
    critical when any alarm in it is, and lists critical ones first. Its id derives from the ids it
    includes, so planning the same digest again gives the same notification.
    """
    _require_aware(now)
    due = [n for n in pending if _digestible(n, now + window)]
    if len(due) <= threshold:
        return None
    if len({(n.tenant_id, n.recipient.recipient_id, n.recipient.channel) for n in due}) > 1:
        raise ValueError("a digest gathers the alarms of one recipient address")
    ordered = sorted(due, key=lambda n: (n.urgency is not Urgency.CRITICAL, n.created_at, str(n.notification_id)))
    digest_id = uuid5(NOTIFY_NAMESPACE, "alarm_digest|" + "|".join(sorted(str(n.notification_id) for n in due)))
    included = tuple(replace(n, suppressed=f"included in digest {digest_id}") for n in ordered)
    return Digest(_digest_notification(digest_id, ordered, now), included)


def _digest_notification(digest_id: UUID, ordered: list[Notification], now: datetime) -> Notification:
    first = ordered[0]
    subjects = {n.subject_id for n in ordered}
    accounts = {n.account_id for n in ordered}
    return Notification(
        notification_id=digest_id, tenant_id=first.tenant_id, topic=Topic.ALARM_DIGEST, recipient=first.recipient,
        subject_id=subjects.pop() if len(subjects) == 1 else "*",  # "*": alarms about several subjects
        account_id=accounts.pop() if len(accounts) == 1 else None,
        dedupe_key=f"alarm_digest:{digest_id}", urgency=first.urgency,  # critical ones come first
        not_before=min(n.not_before for n in ordered), cause_event_id=digest_id, created_at=now,
        context={"event_type": "AlarmDigest", "alarms": [_digest_line(n) for n in ordered],
                 "time_zone": first.context.get("time_zone", "UTC")})


def _digestible(notification: Notification, due_by: datetime) -> bool:
    return (notification.topic in DIGESTIBLE and notification.suppressed is None
            and notification.recipient.audience is Audience.OPERATOR
            and notification.recipient.channel is not Channel.WEBHOOK and notification.not_before <= due_by)


def _digest_line(notification: Notification) -> dict[str, Any]:
    return {"notification_id": str(notification.notification_id), "topic": notification.topic.value,
            "urgency": notification.urgency.value, "subject_id": notification.subject_id,
            "event_type": notification.context.get("event_type"), "event": notification.context.get("event", {})}
