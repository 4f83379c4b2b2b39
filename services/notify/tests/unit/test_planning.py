"""Planning notifications: one per recipient address, derived ids, opt-outs, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_schemas.examples import example_payloads
from amiflow_schemas.payload import EventPayload
from notify.core.model import Audience, Channel, Notification, QuietHours, Recipient, Topic, Urgency
from notify.core.planning import notification_id_for, plan, quiet_hours_end, subject_of
from notify.core.subjects import event_context

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAUSE = UUID("00000000-0000-4000-8000-000000000001")
NIGHT = QuietHours(start=time(21), end=time(8), time_zone="Asia/Shanghai")
_EXAMPLES = example_payloads()


def _customer(channel: Channel = Channel.SMS, address: str = "+8613812345678", **changes: object) -> Recipient:
    fields: dict[str, object] = {"recipient_id": "CONTACT-1", "audience": Audience.CUSTOMER, "channel": channel,
                                 "address": address, **changes}
    return Recipient(**fields)  # type: ignore[arg-type]


def _local(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=SHANGHAI)


def _plan(payload: EventPayload, recipients: list[Recipient], now: datetime,
          cause: UUID = CAUSE) -> list[Notification]:
    subject = subject_of(payload, zone=SHANGHAI)
    assert subject is not None
    return plan(subject, recipients, tenant_id="tenant-demo", cause_event_id=cause, now=now, zone=SHANGHAI,
                context=event_context(payload))


def test_one_notification_per_recipient_address_with_the_subjects_facts() -> None:
    recipients = [_customer(Channel.SMS), _customer(Channel.EMAIL, "li@example.com")]
    planned = _plan(_EXAMPLES["BalanceLow"], recipients, _local(12))
    assert [n.recipient.channel for n in planned] == [Channel.SMS, Channel.EMAIL]
    first = planned[0]
    assert (first.tenant_id, first.topic, first.subject_id, first.account_id) == (
        "tenant-demo", Topic.BALANCE_LOW, "ACC-0001", "ACC-0001")
    assert first.dedupe_key == "low_balance:ACC-0001:2026-07-01"
    assert (first.cause_event_id, first.created_at, first.suppressed) == (CAUSE, _local(12), None)
    assert first.context["event"]["balance"] == "22.00"


def test_a_redelivered_event_plans_the_same_ids() -> None:
    recipients = [_customer(Channel.SMS), _customer(Channel.EMAIL, "li@example.com")]
    first = _plan(_EXAMPLES["BalanceLow"], recipients, _local(12))
    again = _plan(_EXAMPLES["BalanceLow"], recipients, _local(13))
    assert [n.notification_id for n in first] == [n.notification_id for n in again]
    assert first[0].notification_id == notification_id_for(CAUSE, "CONTACT-1", Channel.SMS)
    assert first[0].notification_id != first[1].notification_id


def test_another_cause_plans_other_ids_but_the_same_dedupe_key_on_the_same_day() -> None:
    one = _plan(_EXAMPLES["BalanceLow"], [_customer()], _local(12))[0]
    other = _plan(_EXAMPLES["BalanceLow"], [_customer()], _local(12), cause=UUID(int=2))[0]
    assert one.notification_id != other.notification_id
    assert one.dedupe_key == other.dedupe_key


def test_a_recipient_listed_twice_is_planned_once() -> None:
    assert len(_plan(_EXAMPLES["BalanceLow"], [_customer(), _customer()], _local(12))) == 1


def test_recipients_outside_the_subjects_audiences_are_not_planned() -> None:
    operator = Recipient("OP-1", Audience.OPERATOR, Channel.EMAIL, "ops@example.com")
    assert _plan(_EXAMPLES["BalanceLow"], [operator], _local(12)) == []
    assert len(_plan(_EXAMPLES["AlarmRaised"], [operator, _customer()], _local(12))) == 1


def test_an_opted_out_contact_is_suppressed_for_a_routine_topic() -> None:
    opted_out = _customer(opted_out=frozenset({Topic.BALANCE_LOW}))
    planned = _plan(_EXAMPLES["BalanceLow"], [opted_out], _local(12))
    assert planned[0].suppressed == "opted out of balance_low"


def test_an_opted_out_contact_is_still_told_of_a_critical_topic() -> None:
    opted_out = _customer(opted_out=frozenset({Topic.BALANCE_DEPLETED}))
    planned = _plan(_EXAMPLES["BalanceDepleted"], [opted_out], _local(12))
    assert planned[0].urgency is Urgency.CRITICAL
    assert planned[0].suppressed is None


def test_an_empty_address_is_suppressed_with_the_reason() -> None:
    planned = _plan(_EXAMPLES["BalanceDepleted"], [_customer(Channel.WECHAT, "  ")], _local(12))
    assert planned[0].suppressed == "no wechat address"


def test_quiet_hours_hold_a_routine_message_until_the_next_morning() -> None:
    planned = _plan(_EXAMPLES["BalanceLow"], [_customer(quiet_hours=NIGHT)], _local(23, 30))
    assert planned[0].not_before == _local(8, day=2)


def test_quiet_hours_after_midnight_end_the_same_morning() -> None:
    planned = _plan(_EXAMPLES["BalanceLow"], [_customer(quiet_hours=NIGHT)], _local(6, 15))
    assert planned[0].not_before == _local(8)


def test_outside_quiet_hours_a_routine_message_goes_now() -> None:
    planned = _plan(_EXAMPLES["BalanceLow"], [_customer(quiet_hours=NIGHT)], _local(20, 59))
    assert planned[0].not_before == _local(20, 59)


def test_quiet_hours_do_not_hold_a_critical_message() -> None:
    planned = _plan(_EXAMPLES["BalanceDepleted"], [_customer(quiet_hours=NIGHT)], _local(23, 30))
    assert planned[0].not_before == _local(23, 30)


def test_quiet_hours_are_the_recipients_local_hours() -> None:
    london_night = QuietHours(start=time(21), end=time(8), time_zone="Europe/London")
    # 23:30 in Shanghai is 16:30 in London (BST): not quiet there.
    planned = _plan(_EXAMPLES["BalanceLow"], [_customer(quiet_hours=london_night)], _local(23, 30))
    assert planned[0].not_before == _local(23, 30)


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(start=time(12), end=time(14), time_zone="Asia/Shanghai")
    assert quiet_hours_end(lunch, _local(13)) == _local(14)
    assert quiet_hours_end(lunch, _local(14)) is None
    assert quiet_hours_end(lunch, _local(11, 59)) is None


def test_quiet_hours_end_on_the_local_wall_clock_across_a_dst_change() -> None:
    berlin_night = QuietHours(start=time(22), end=time(7), time_zone="Europe/Berlin")
    # The night of 2026-03-28/29: clocks go from 02:00 CET to 03:00 CEST; 07:00 CEST is 05:00 UTC.
    assert quiet_hours_end(berlin_night, datetime(2026, 3, 28, 22, 30, tzinfo=UTC)) == datetime(
        2026, 3, 29, 5, 0, tzinfo=UTC)


def test_times_are_printed_in_the_recipients_zone_else_the_quiet_hours_else_the_tenants() -> None:
    own_zone = _customer(time_zone="Europe/London", quiet_hours=NIGHT)
    quiet_zone = _customer(Channel.EMAIL, "li@example.com",
                           quiet_hours=QuietHours(time(22), time(7), "Asia/Urumqi"))
    tenant_zone = _customer(Channel.WECHAT, "oAbCdEfGhIjKlMnOpQrStUvWxYz0")
    zones = [n.context["time_zone"] for n in _plan(_EXAMPLES["BalanceLow"], [own_zone, quiet_zone, tenant_zone],
                                                   _local(12))]
    assert zones == ["Europe/London", "Asia/Urumqi", "Asia/Shanghai"]
