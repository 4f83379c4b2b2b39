"""A command's life: an acknowledgement is not success, a read-back is; retries, expiry, cancel."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import (
    CancelReason,
    CommandAcknowledged,
    CommandCancelled,
    CommandCompleted,
    CommandConfirmed,
    CommandDispatched,
    CommandEscalated,
    CommandExpired,
    CommandFailed,
    CommandKind,
    CommandOutcome,
    CommandPriority,
    CommandRequested,
    CommandScheduled,
    FailureReason,
    ScheduleHold,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import ValveState
from commands.core.confirmation import acknowledge, record_delivery_outcome
from commands.core.lifecycle import LifecycleSettings, cancel, expire, request
from commands.core.model import Command, CommandState, Refusal, RefusalCode, Transition, history
from commands.core.timers import dispatch_key, next_due_at

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 7, 1, 10, 0, tzinfo=SH)
M = timedelta(minutes=1)


def _sent_close(desk, at=T):
    """An operator's valve close, requested and sent at ``at``."""
    close = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, at)
    desk.submit(close, at)
    desk.tick(at)
    return close.command_id


def _state(desk, command_id):
    return desk.commands[command_id].state


def test_a_command_goes_requested_scheduled_dispatched_acknowledged_confirmed_each_step_an_event(desk):
    command_id = _sent_close(desk)
    desk.ack(command_id, T + M)
    desk.report(desk.status(desk.water.device_id, T + 2 * M, valve=ValveState.CLOSED), T + 2 * M)

    kinds = [type(e) for e in desk.published]
    assert kinds == [CommandRequested, CommandScheduled, CommandDispatched, ValveCommandIssued, CommandConfirmed]
    assert _state(desk, command_id) is CommandState.CONFIRMED
    [issued] = desk.events(ValveCommandIssued)
    assert issued.action is ValveAction.CLOSE and issued.command_id == command_id


def test_folding_the_stored_events_rebuilds_the_command(desk):
    command_id = _sent_close(desk)
    ack = CommandAcknowledged(command_id=command_id, device_id=desk.water.device_id, acknowledged_at=T + M,
                              attempt=1, gateway_id=None, reported_valve_state=None, reply_hex=None)
    desk.take([acknowledge(desk.commands[command_id], ack, None, desk.settings)], T + M)
    desk.report(desk.status(desk.water.device_id, T + 2 * M, valve=ValveState.CLOSED), T + 2 * M)

    requested = desk.events(CommandRequested)[0]
    rebuilt = history(desk.tenant, requested, [*desk.published[1:3], ack, desk.published[-1]])
    assert rebuilt == desk.commands[command_id]


def test_an_acknowledgement_without_a_matching_read_back_does_not_confirm(desk):
    command_id = _sent_close(desk)
    command = desk.commands[command_id]
    # The CJ/T 188 reply even carries the state after the move: still only an acknowledgement.
    ack = CommandAcknowledged(command_id=command_id, device_id=desk.water.device_id, acknowledged_at=T + M,
                              attempt=1, gateway_id="DTU-1", reported_valve_state=ValveState.CLOSED,
                              reply_hex="6810")
    after = acknowledge(command, ack, None, desk.settings)
    assert after.command.state is CommandState.ACKNOWLEDGED and after.events == ()


def test_a_read_back_processed_before_the_acknowledgement_confirms_on_the_acknowledgement(desk):
    command_id = _sent_close(desk)
    desk.report(desk.status(desk.water.device_id, T + M, valve=ValveState.CLOSED), T + M)
    assert _state(desk, command_id) is CommandState.DISPATCHED

    desk.ack(command_id, T + 2 * M)
    assert _state(desk, command_id) is CommandState.CONFIRMED


def test_a_read_back_taken_before_the_send_proves_nothing(desk):
    command_id = _sent_close(desk)
    desk.ack(command_id, T + M)
    desk.report(desk.status(desk.water.device_id, T - 10 * M, valve=ValveState.OPEN), T + 2 * M)
    assert _state(desk, command_id) is CommandState.ACKNOWLEDGED
    assert desk.events(CommandScheduled)[-1].attempt == 1


def test_a_mismatching_read_back_resends_with_growing_back_off_then_fails_with_an_operator_alarm(desk):
    command_id = _sent_close(desk)
    now = T
    for _ in range(3):
        desk.ack(command_id, now + M)
        desk.report(desk.status(desk.water.device_id, now + 2 * M, valve=ValveState.OPEN), now + 2 * M)
        now = desk.commands[command_id].send_at or now + 2 * M
        desk.tick(now)

    waits = [s.send_at - s.scheduled_at for s in desk.events(CommandScheduled) if s.attempt > 1]
    assert waits == [timedelta(minutes=5), timedelta(minutes=10)]
    assert [s.holds for s in desk.events(CommandScheduled) if s.attempt > 1] == [(ScheduleHold.RETRY_BACKOFF,)] * 2
    assert len(desk.events(ValveCommandIssued)) == 3 and all(e.command_id == command_id
                                                            for e in desk.events(ValveCommandIssued))
    [failed] = desk.events(CommandFailed)
    assert (failed.reason, failed.attempts) == (FailureReason.READ_BACK_MISMATCH, 3)
    [alarm] = desk.events(CommandEscalated)
    assert alarm.outcome is CommandOutcome.FAILED and alarm.command_id == command_id
    assert _state(desk, command_id) is CommandState.FAILED


def test_no_read_back_within_the_timeout_resends_the_command(desk):
    command_id = _sent_close(desk)
    desk.ack(command_id, T + M)
    desk.tick(T + M + desk.settings.confirm_timeout - timedelta(seconds=1))
    assert _state(desk, command_id) is CommandState.ACKNOWLEDGED

    desk.tick(T + M + desk.settings.confirm_timeout)
    assert _state(desk, command_id) is CommandState.SCHEDULED
    assert desk.commands[command_id].attempt == 1


def test_a_late_read_back_during_the_back_off_confirms_without_sending_again(desk):
    command_id = _sent_close(desk)
    desk.ack(command_id, T + M)
    desk.report(desk.status(desk.water.device_id, T + 2 * M, valve=ValveState.OPEN), T + 2 * M)
    assert _state(desk, command_id) is CommandState.SCHEDULED

    desk.report(desk.status(desk.water.device_id, T + 3 * M, valve=ValveState.CLOSED), T + 3 * M)
    desk.tick(T + timedelta(hours=1))
    assert _state(desk, command_id) is CommandState.CONFIRMED
    assert len(desk.events(ValveCommandIssued)) == 1


def test_a_read_now_is_done_when_the_device_answers(desk):
    read = desk.operator_request(desk.water.device_id, CommandKind.READ_NOW, T)
    desk.submit(read, T)
    desk.tick(T)
    desk.ack(read.command_id, T + M)

    [done] = desk.events(CommandCompleted)
    assert done.command_id == read.command_id and _state(desk, read.command_id) is CommandState.CONFIRMED
    assert [e.kind for e in desk.events(CommandDispatched)] == [CommandKind.READ_NOW]
    assert desk.events(ValveCommandIssued) == []


def test_a_held_command_expires_unsent_and_raises_an_operator_alarm(desk):
    late = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T, not_before=T + timedelta(hours=1),
                                 expires_at=T + timedelta(hours=3))
    desk.submit(late, T)
    desk.tick(T + timedelta(hours=3))

    assert _state(desk, late.command_id) is CommandState.EXPIRED
    assert desk.events(ValveCommandIssued) == []
    assert [e.attempts for e in desk.events(CommandExpired)] == [0]
    assert [e.outcome for e in desk.events(CommandEscalated)] == [CommandOutcome.EXPIRED]


def test_a_sent_command_is_left_to_ingest_to_expire_until_the_grace_has_passed(desk):
    command_id = _sent_close(desk)
    expires_at = desk.commands[command_id].expires_at
    settings = desk.settings

    assert expire(desk.commands[command_id], expires_at, settings).events == ()
    ended = expire(desk.commands[command_id], expires_at + settings.delivery_grace, settings)
    assert ended.command.state is CommandState.EXPIRED
    assert next_due_at(desk.commands[command_id], settings) == expires_at + settings.delivery_grace


def test_ingests_failure_ends_the_command_with_an_alarm_and_is_not_published_again(desk):
    command_id = _sent_close(desk)
    failed = CommandFailed(command_id=command_id, device_id=desk.water.device_id, failed_at=T + M,
                           reason=FailureReason.NO_REPLY, detail="no reply to 3 sends", attempts=3,
                           device_error_code=None)
    after = record_delivery_outcome(desk.commands[command_id], failed, T + M)

    assert after.command.state is CommandState.FAILED
    assert [type(e) for e in after.events] == [CommandEscalated]
    assert record_delivery_outcome(after.command, failed, T + 2 * M).events == ()  # redelivered


def test_a_late_acknowledgement_after_expiry_changes_nothing(desk):
    command_id = _sent_close(desk)
    expired = expire(desk.commands[command_id], T + timedelta(days=1), desk.settings).command
    ack = CommandAcknowledged(command_id=command_id, device_id=desk.water.device_id, acknowledged_at=T + 2 * M,
                              attempt=1, gateway_id=None, reported_valve_state=None, reply_hex=None)
    assert acknowledge(expired, ack, None, desk.settings) == Transition(expired)


def test_cancelling_a_held_command_records_who_and_why(desk):
    held = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T, not_before=T + timedelta(hours=1))
    desk.submit(held, T)
    done = cancel(desk.commands[held.command_id], "op-9", CancelReason.OPERATOR, "customer paid at the counter",
                  T + M)

    assert isinstance(done, Transition) and done.command.state is CommandState.CANCELLED
    [event] = done.events
    assert isinstance(event, CommandCancelled)
    assert (event.cancelled_by, event.detail) == ("op-9", "customer paid at the counter")


def test_a_sent_command_cannot_be_cancelled(desk):
    command_id = _sent_close(desk)
    refused = cancel(desk.commands[command_id], "op-9", CancelReason.OPERATOR, "too late", T + M)
    assert isinstance(refused, Refusal) and refused.code is RefusalCode.NOT_CANCELLABLE
    assert "cannot be called back" in refused.message


def test_a_first_send_to_a_device_already_in_the_wanted_state_is_not_sent(desk):
    desk.report(desk.status(desk.water.device_id, T - M, valve=ValveState.CLOSED), T - M)
    command_id = _sent_close(desk)

    assert desk.events(ValveCommandIssued) == []
    [cancelled] = desk.events(CommandCancelled)
    assert cancelled.reason is CancelReason.ALREADY_IN_STATE and _state(desk, command_id) is CommandState.CANCELLED


def test_a_command_queued_after_another_has_no_send_time_until_released(desk):
    first = desk.operator_request(desk.water.device_id, CommandKind.READ_NOW, T)
    second = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T,
                                   after_command_id=first.command_id)
    queued = request(desk.tenant, second, T)
    assert queued.command.state is CommandState.REQUESTED and queued.events == (second,)
    assert next_due_at(queued.command, LifecycleSettings()) == second.expires_at


def test_an_event_of_another_command_leaves_the_command_as_it_is(desk):
    command_id = _sent_close(desk)
    command: Command = desk.commands[command_id]
    ack = CommandAcknowledged(command_id=uuid4(), device_id=desk.water.device_id, acknowledged_at=T + M,
                              attempt=1, gateway_id=None, reported_valve_state=None, reply_hex=None)
    assert acknowledge(command, ack, None, desk.settings).command is command


def test_due_commands_go_out_urgent_first_then_by_due_time(desk):
    routine = desk.operator_request(desk.water.device_id, CommandKind.TIME_SYNC, T, priority=CommandPriority.ROUTINE)
    normal = desk.operator_request(desk.water.device_id, CommandKind.READ_NOW, T + M)
    urgent = desk.operator_request(desk.electric.device_id, CommandKind.RELAY_TRIP, T + 2 * M,
                                   priority=CommandPriority.URGENT)
    for requested in (routine, normal, urgent):
        desk.submit(requested, requested.requested_at)
    ordered = sorted((desk.commands[r.command_id] for r in (routine, normal, urgent)), key=dispatch_key)
    assert [c.command_id for c in ordered] == [urgent.command_id, normal.command_id, routine.command_id]


def test_a_command_and_a_device_state_survive_a_json_round_trip(desk):
    command_id = _sent_close(desk)
    desk.ack(command_id, T + M)
    desk.report(desk.status(desk.water.device_id, T + 2 * M, valve=ValveState.CLOSED), T + 2 * M)
    command, state = desk.commands[command_id], desk.states[desk.water.device_id]
    assert Command.model_validate(command.model_dump(mode="json")) == command
    assert type(state).model_validate(state.model_dump(mode="json")) == state
    assert state.last_valve_switch is not None and state.last_valve_switch.command_id == command_id
