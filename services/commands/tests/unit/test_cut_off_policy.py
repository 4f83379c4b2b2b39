"""billing.md B2-B4 and the tenant's cut-off policy: what is cut, when, and what a payment restores."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import (
    CancelReason,
    CommandCancelled,
    CommandDispatched,
    CommandKind,
    CommandReason,
    CommandScheduled,
    RelayAction,
    RelayCommandIssued,
    ScheduleHold,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import RelayState, Utility, ValveState
from commands.core.capabilities import Device
from commands.core.model import CommandState
from commands.core.policy import AccountExemption, CutOffPolicy, QuietWindow, Weekday, next_allowed_instant

SH = ZoneInfo("Asia/Shanghai")
WEDNESDAY = datetime(2026, 7, 1, 10, 0, tzinfo=SH)
FRIDAY_2310 = datetime(2026, 7, 3, 23, 10, tzinfo=SH)
SATURDAY = datetime(2026, 7, 4, 11, 0, tzinfo=SH)
MONDAY_0800 = datetime(2026, 7, 6, 8, 0, tzinfo=SH)
H = timedelta(hours=1)
B4 = CutOffPolicy(policy_id="b4", cut_utilities=frozenset({Utility.ELECTRICITY}),
                  quiet_windows=(QuietWindow(start=time(18), end=time(8)),),
                  quiet_weekdays=frozenset({Weekday.SAT, Weekday.SUN}))


def _trip_confirmed(desk, at):
    """Depleted at ``at``, the trip sent, acknowledged and read back disconnected."""
    desk.balance(desk.depleted(at), at)
    desk.tick(at)
    trip = desk.only(CommandKind.RELAY_TRIP)
    desk.ack(trip.command_id, at + timedelta(minutes=1))
    desk.report(desk.status(desk.electric.device_id, at + timedelta(minutes=2), relay=RelayState.DISCONNECTED),
                at + timedelta(minutes=2))
    assert desk.commands[trip.command_id].state is CommandState.CONFIRMED
    return trip


def test_b2_depleted_unified_account_trips_only_the_electricity_meter_and_sends_no_valve_command(desk):
    decision = desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY)
    desk.tick(WEDNESDAY)

    assert [(r.device_id, r.kind) for r in decision.requests] == [(desk.electric.device_id, CommandKind.RELAY_TRIP)]
    assert decision.skipped == ((desk.water.device_id, "policy cut-electricity-not-water does not cut water"),)
    [trip] = desk.events(RelayCommandIssued)
    assert (trip.device_id, trip.action, trip.reason) == (desk.electric.device_id, RelayAction.TRIP,
                                                         CommandReason.BALANCE_DEPLETED)
    assert trip.account_id == desk.account and trip.requested_by == "commands"
    assert desk.events(ValveCommandIssued) == []


def test_b3_payment_after_b2_sends_one_close_allowed_restore_to_the_same_meter(desk):
    _trip_confirmed(desk, WEDNESDAY)

    decision = desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)
    desk.tick(WEDNESDAY + H)

    assert [(r.device_id, r.kind) for r in decision.requests] == [
        (desk.electric.device_id, CommandKind.RELAY_CLOSE_ALLOWED)]
    assert [(e.device_id, e.action) for e in desk.events(RelayCommandIssued)] == [
        (desk.electric.device_id, RelayAction.TRIP), (desk.electric.device_id, RelayAction.CLOSE_ALLOWED)]
    assert desk.events(ValveCommandIssued) == []


def test_b3_with_a_direct_close_policy_restores_by_direct_close_only_where_the_meter_states_it(make_desk):
    direct = B4.model_copy(update={"quiet_windows": (), "quiet_weekdays": frozenset(),
                                   "relay_restore": CommandKind.RELAY_CLOSE_DIRECT})
    for kinds, expected in ((None, RelayAction.CLOSE_ALLOWED),
                            (frozenset({CommandKind.RELAY_TRIP, CommandKind.RELAY_CLOSE_DIRECT}),
                             RelayAction.CLOSE_DIRECT)):
        meter = Device(device_id="EM-123456789012", utility=Utility.ELECTRICITY, profile="dlt645-single-phase",
                       active=True, kinds=kinds)
        desk = make_desk(meter, policy=direct)
        _trip_confirmed(desk, WEDNESDAY)
        desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)
        desk.tick(WEDNESDAY + H)
        assert desk.events(RelayCommandIssued)[-1].action is expected


def test_b4_depleted_friday_night_is_scheduled_for_monday_0800_and_sent_then(make_desk):
    desk = make_desk(policy=B4)
    desk.balance(desk.depleted(FRIDAY_2310), FRIDAY_2310)

    trip = desk.only(CommandKind.RELAY_TRIP)
    [scheduled] = desk.events(CommandScheduled)
    assert trip.state is CommandState.SCHEDULED and scheduled.send_at == MONDAY_0800
    assert scheduled.holds == (ScheduleHold.QUIET_WINDOW,)
    desk.tick(SATURDAY)
    desk.tick(MONDAY_0800 - timedelta(seconds=1))
    assert desk.events(RelayCommandIssued) == []
    desk.tick(MONDAY_0800)
    assert [e.action for e in desk.events(RelayCommandIssued)] == [RelayAction.TRIP]


def test_b4_payment_before_monday_cancels_the_held_cut_off_and_nothing_is_sent(make_desk):
    desk = make_desk(policy=B4)
    desk.balance(desk.depleted(FRIDAY_2310), FRIDAY_2310)

    decision = desk.balance(desk.restored(SATURDAY), SATURDAY)
    desk.tick(MONDAY_0800)
    desk.tick(MONDAY_0800 + timedelta(days=3))

    assert decision.requests == ()
    [cancelled] = desk.events(CommandCancelled)
    assert cancelled.reason is CancelReason.BALANCE_RESTORED
    assert desk.only(CommandKind.RELAY_TRIP).state is CommandState.CANCELLED
    assert desk.events(CommandDispatched) == [] and desk.events(RelayCommandIssued) == []


def test_a_quiet_night_before_a_holiday_week_holds_the_cut_off_until_the_first_working_morning():
    national_days = frozenset(date(2026, 10, d) for d in range(1, 8))
    policy = B4.model_copy(update={"holidays": national_days})
    depleted_at = datetime(2026, 9, 30, 20, 0, tzinfo=SH)  # Wednesday evening before National Day
    assert next_allowed_instant(policy, depleted_at, SH) == datetime(2026, 10, 8, 8, 0, tzinfo=SH)


def test_a_weekend_day_made_a_working_day_allows_cut_offs_outside_its_night():
    policy = B4.model_copy(update={"working_days": frozenset({date(2026, 9, 27)})})  # a Sunday worked (调休)
    saturday_night = datetime(2026, 9, 26, 23, 0, tzinfo=SH)
    assert next_allowed_instant(policy, saturday_night, SH) == datetime(2026, 9, 27, 8, 0, tzinfo=SH)


def test_an_account_exemption_holds_the_cut_off_until_the_day_after_its_last_day(desk):
    exemption = AccountExemption(account_id=desk.account, until=date(2026, 7, 10), reason="oxygen concentrator")
    desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY, exemption=exemption)

    [scheduled] = desk.events(CommandScheduled)
    assert scheduled.send_at == datetime(2026, 7, 11, 0, 0, tzinfo=SH)
    assert scheduled.holds == (ScheduleHold.EXEMPTION,)


def test_billing_exempt_until_on_the_depletion_holds_the_cut_off_too(desk):
    until = WEDNESDAY + timedelta(days=2)
    desk.balance(desk.depleted(WEDNESDAY, exempt_until=until), WEDNESDAY)
    assert desk.only(CommandKind.RELAY_TRIP).send_at == until


def test_an_exemption_ending_in_a_quiet_window_waits_for_the_window_to_end_as_well(make_desk):
    desk = make_desk(policy=B4)
    exemption = AccountExemption(account_id=desk.account, until=date(2026, 7, 10), reason="medical")
    desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY, exemption=exemption)
    [scheduled] = desk.events(CommandScheduled)
    assert scheduled.send_at == datetime(2026, 7, 13, 8, 0, tzinfo=SH)  # Sat 11 → Monday morning
    assert scheduled.holds == (ScheduleHold.QUIET_WINDOW, ScheduleHold.EXEMPTION)


def test_the_minimum_interval_holds_a_second_cut_off_of_the_same_meter(make_desk):
    desk = make_desk(policy=B4.model_copy(update={"quiet_windows": (), "quiet_weekdays": frozenset(),
                                                  "min_cut_off_interval": timedelta(hours=24)}))
    _trip_confirmed(desk, WEDNESDAY)
    desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)
    desk.tick(WEDNESDAY + H)
    restore = desk.only(CommandKind.RELAY_CLOSE_ALLOWED)
    desk.ack(restore.command_id, WEDNESDAY + 2 * H)
    desk.report(desk.status(desk.electric.device_id, WEDNESDAY + 2 * H, relay=RelayState.CLOSE_ALLOWED),
                WEDNESDAY + 2 * H)

    desk.balance(desk.depleted(WEDNESDAY + 3 * H), WEDNESDAY + 3 * H)

    scheduled = desk.events(CommandScheduled)[-1]
    assert scheduled.send_at == WEDNESDAY + timedelta(hours=24)
    assert scheduled.holds == (ScheduleHold.MIN_INTERVAL,)


def test_a_meter_already_reported_disconnected_gets_no_trip(desk):
    desk.report(desk.status(desk.electric.device_id, WEDNESDAY - H, relay=RelayState.DISCONNECTED), WEDNESDAY - H)
    decision = desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY)
    assert decision.requests == ()
    assert (desk.electric.device_id, "already disconnected") in decision.skipped


def test_a_payment_does_not_reopen_a_valve_closed_on_a_burst(make_desk):
    both = make_desk(policy=B4.model_copy(update={"quiet_windows": (), "quiet_weekdays": frozenset(),
                                                  "cut_utilities": frozenset(Utility)}))
    burst = both.operator_request(both.water.device_id, CommandKind.VALVE_CLOSE, WEDNESDAY,
                                  reason=CommandReason.LEAK_PROTECTION)
    both.submit(burst, WEDNESDAY)
    both.tick(WEDNESDAY)
    both.ack(burst.command_id, WEDNESDAY)
    both.report(both.status(both.water.device_id, WEDNESDAY, valve=ValveState.CLOSED), WEDNESDAY)
    _trip_confirmed(both, WEDNESDAY + H)

    decision = both.balance(both.restored(WEDNESDAY + 2 * H), WEDNESDAY + 2 * H)

    assert [r.kind for r in decision.requests] == [CommandKind.RELAY_CLOSE_ALLOWED]
    assert (both.water.device_id, "not cut off by the balance") in decision.skipped


def test_a_payment_while_the_trip_is_on_its_way_queues_the_restore_after_it(desk):
    desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY)
    desk.tick(WEDNESDAY)
    trip = desk.only(CommandKind.RELAY_TRIP)

    desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)
    restore = desk.only(CommandKind.RELAY_CLOSE_ALLOWED)
    assert restore.state is CommandState.REQUESTED and restore.request.after_command_id == trip.command_id
    desk.tick(WEDNESDAY + H)
    assert len(desk.events(RelayCommandIssued)) == 1  # the restore waits while the trip is out

    desk.ack(trip.command_id, WEDNESDAY + H)
    desk.report(desk.status(desk.electric.device_id, WEDNESDAY + H, relay=RelayState.DISCONNECTED), WEDNESDAY + H)
    desk.tick(WEDNESDAY + H)
    assert [e.action for e in desk.events(RelayCommandIssued)] == [RelayAction.TRIP, RelayAction.CLOSE_ALLOWED]


def test_a_late_older_depletion_after_a_restore_cuts_nothing(desk):
    _trip_confirmed(desk, WEDNESDAY)
    desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)
    decision = desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY + 2 * H)  # redelivered old news
    assert decision.requests == () and decision.cancels == ()


def test_a_second_depletion_while_a_cut_off_is_outstanding_requests_nothing_more(make_desk):
    desk = make_desk(policy=B4)
    desk.balance(desk.depleted(FRIDAY_2310), FRIDAY_2310)
    decision = desk.balance(desk.depleted(SATURDAY), SATURDAY)
    assert decision.requests == ()
    assert decision.skipped[-1] == (desk.electric.device_id, "a cut-off is already outstanding")
    assert len(desk.events(CommandScheduled)) == 1


def test_a_depletion_supersedes_a_restore_that_has_not_been_sent(desk):
    _trip_confirmed(desk, WEDNESDAY)
    desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)  # not yet sent: no tick
    decision = desk.balance(desk.depleted(WEDNESDAY + 2 * H), WEDNESDAY + 2 * H)

    restore = desk.only(CommandKind.RELAY_CLOSE_ALLOWED)
    assert restore.state is CommandState.CANCELLED
    # The meter still reports the trip: nothing new to send either.
    assert decision.requests == () and [c.reason for c in decision.cancels] == [CancelReason.SUPERSEDED]


def test_a_payment_while_an_unconfirmed_trip_waits_to_be_resent_cancels_it_and_restores_in_case_it_acted(desk):
    desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY)
    desk.tick(WEDNESDAY)
    trip = desk.only(CommandKind.RELAY_TRIP)
    desk.ack(trip.command_id, WEDNESDAY)
    no_read_back = WEDNESDAY + desk.settings.confirm_timeout
    desk.tick(no_read_back)
    assert desk.commands[trip.command_id].state is CommandState.SCHEDULED  # waiting to be sent again

    decision = desk.balance(desk.restored(no_read_back + timedelta(minutes=1)), no_read_back + timedelta(minutes=1))

    assert desk.commands[trip.command_id].state is CommandState.CANCELLED
    assert [r.kind for r in decision.requests] == [CommandKind.RELAY_CLOSE_ALLOWED]


def test_an_exemption_of_another_account_is_not_applied(desk):
    other = AccountExemption(account_id="ACC-0002", until=date(2026, 7, 10), reason="medical")
    desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY, exemption=other)
    assert desk.only(CommandKind.RELAY_TRIP).send_at == WEDNESDAY


def test_a_second_restore_while_one_is_outstanding_requests_nothing_more(desk):
    _trip_confirmed(desk, WEDNESDAY)
    desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)
    decision = desk.balance(desk.restored(WEDNESDAY + 2 * H), WEDNESDAY + 2 * H)  # a later payment, same state
    assert decision.requests == ()
    assert decision.skipped == ((desk.water.device_id, "not cut off by the balance"),
                                (desk.electric.device_id, "a restore is already outstanding"))


def test_a_payment_after_a_trip_the_read_back_showed_had_no_effect_restores_nothing(desk):
    desk.balance(desk.depleted(WEDNESDAY), WEDNESDAY)
    desk.tick(WEDNESDAY)
    trip = desk.only(CommandKind.RELAY_TRIP)
    desk.ack(trip.command_id, WEDNESDAY + timedelta(minutes=1))
    desk.report(desk.status(desk.electric.device_id, WEDNESDAY + timedelta(minutes=2), relay=RelayState.CONNECTED),
                WEDNESDAY + timedelta(minutes=2))

    decision = desk.balance(desk.restored(WEDNESDAY + H), WEDNESDAY + H)

    assert desk.commands[trip.command_id].state is CommandState.CANCELLED
    assert decision.requests == () and (desk.electric.device_id, "already restored") in decision.skipped


def test_a_policy_reads_the_same_however_its_sets_were_built() -> None:
    # Iterating a frozenset of strings follows string hashing, which changes from process to process: an undo
    # that put a policy back could read back with its utilities in another order than before.
    written = {CutOffPolicy(policy_id="default", cut_utilities=frozenset(order),
                            holidays=frozenset({date(2026, 5, 1), date(2026, 1, 1)}),
                            quiet_windows=(QuietWindow(start=time(22), end=time(6), weekdays=frozenset(
                                {Weekday.SUN, Weekday.MON})),)).model_dump_json()
               for order in itertools.permutations(Utility)}
    assert len(written) == 1
    [text] = written
    assert '"cut_utilities":["water","gas","heat","electricity"]' in text
    assert '"holidays":["2026-01-01","2026-05-01"]' in text and '"weekdays":["mon","sun"]' in text
