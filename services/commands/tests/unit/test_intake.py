"""Accepting requests: refusals with a reason, idempotency keys, and the latest intent per device."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.commands import (
    CancelReason,
    CommandCancelled,
    CommandKind,
    CommandOrigin,
    CommandRequested,
    ParameterSetting,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import Utility, ValveState
from commands.core.capabilities import Device, ProtocolFamily, protocol_family, supported_kinds
from commands.core.intake import Accepted, submit_batch
from commands.core.model import IN_FLIGHT, CommandState, Refusal, RefusalCode, contradicts
from pydantic import ValidationError

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 7, 1, 10, 0, tzinfo=SH)
M = timedelta(minutes=1)


def _device(profile: str, utility: Utility, **changes) -> Device:
    return Device(device_id="D-1", utility=utility, profile=profile, active=True, **changes)


def _refusal(desk, requested) -> Refusal:
    result = desk.submit(requested, T)
    assert isinstance(result, Refusal), result
    return result


def test_a_command_for_an_unknown_device_is_refused(desk):
    refusal = _refusal(desk, desk.operator_request("WM-404", CommandKind.VALVE_CLOSE, T))
    assert refusal.code is RefusalCode.UNKNOWN_DEVICE and "WM-404" in refusal.message


def test_a_removed_device_is_refused(make_desk):
    gone = Device(device_id="WM-1", utility=Utility.WATER, profile="cjt188-water-2004", active=False)
    desk = make_desk(gone)
    assert _refusal(desk, desk.operator_request("WM-1", CommandKind.READ_NOW, T)).code is RefusalCode.DEVICE_REMOVED


def test_a_kind_the_protocol_cannot_do_is_refused_naming_what_it_can(desk):
    refusal = _refusal(desk, desk.operator_request(desk.water.device_id, CommandKind.RELAY_TRIP, T))
    assert refusal.code is RefusalCode.KIND_NOT_SUPPORTED
    assert refusal.message == (f"device {desk.water.device_id} (cjt188-water-2004, cjt188) cannot do relay_trip;"
                               " it can do: read_now, time_sync, valve_close, valve_open")


def test_a_window_that_has_already_passed_is_refused(desk):
    stale = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T - timedelta(hours=3))
    refusal = _refusal(desk, stale)
    assert refusal.code is RefusalCode.WINDOW_PASSED


def test_an_operator_command_must_say_why_and_a_window_must_be_open():
    with pytest.raises(ValidationError, match="says why"):
        CommandRequested.model_validate({**_facts(), "note": None})
    with pytest.raises(ValidationError, match="expires_at must be after"):
        CommandRequested.model_validate({**_facts(), "not_before": T + timedelta(hours=5)})
    with pytest.raises(ValidationError, match="names its rule"):
        CommandRequested.model_validate({**_facts(), "origin": CommandOrigin.AUTOMATION})
    with pytest.raises(ValidationError, match="parameter"):
        CommandRequested.model_validate({**_facts(), "kind": CommandKind.SET_PARAMETER})


def _facts():
    return {"command_id": "6f0f4a8e-8f64-4d0a-9a53-1b0b2b4f7e11", "device_id": "WM-1", "kind": "valve_close",
            "parameter": None, "reason": "operator", "origin": "operator", "requested_by": "op-7", "note": "why",
            "rule_id": None, "account_id": None, "operation_id": None, "after_command_id": None, "batch_id": None,
            "idempotency_key": None, "priority": "normal", "requested_at": T, "not_before": None, "holds": [],
            "expires_at": T + timedelta(hours=2)}


def test_the_same_idempotency_key_answers_the_first_command(desk):
    first = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T, idempotency_key="req-1")
    accepted = desk.submit(first, T)
    assert isinstance(accepted, Accepted)

    again = desk.operator_request(desk.water.device_id, CommandKind.VALVE_OPEN, T + M, idempotency_key="req-1")
    answer = desk.submit(again, T + M, known=accepted.command)

    assert isinstance(answer, Accepted) and answer.duplicate and answer.transitions == ()
    assert answer.command.command_id == first.command_id
    assert len(desk.commands) == 1


def test_a_later_contradicting_request_supersedes_one_not_yet_sent(desk):
    close = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T, not_before=T + timedelta(hours=1))
    desk.submit(close, T)
    reopen = desk.operator_request(desk.water.device_id, CommandKind.VALVE_OPEN, T + M)
    desk.submit(reopen, T + M)

    [cancelled] = desk.events(CommandCancelled)
    assert (cancelled.command_id, cancelled.reason, cancelled.superseded_by) == (
        close.command_id, CancelReason.SUPERSEDED, reopen.command_id)
    assert cancelled.cancelled_by == "op-7"
    desk.tick(T + timedelta(hours=1))
    assert [e.action for e in desk.events(ValveCommandIssued)] == [ValveAction.OPEN]


def test_contradicting_commands_are_never_both_on_their_way_to_one_device(desk):
    def check():
        going = [c for c in desk.outstanding(desk.water.device_id)
                 if c.state in IN_FLIGHT or c.state is CommandState.SCHEDULED]
        assert not any(contradicts(a.kind, b.kind) for a in going for b in going)

    close = desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T)
    desk.submit(close, T)
    desk.tick(T)
    reopen = desk.operator_request(desk.water.device_id, CommandKind.VALVE_OPEN, T + M)
    desk.submit(reopen, T + M)
    check()
    assert desk.commands[reopen.command_id].request.after_command_id == close.command_id
    desk.tick(T + M)
    check()
    assert len(desk.events(ValveCommandIssued)) == 1

    desk.ack(close.command_id, T + 2 * M)
    desk.report(desk.status(desk.water.device_id, T + 2 * M, valve=ValveState.CLOSED), T + 2 * M)
    check()
    desk.tick(T + 2 * M)
    assert [e.action for e in desk.events(ValveCommandIssued)] == [ValveAction.CLOSE, ValveAction.OPEN]


def test_a_batch_is_taken_line_by_line_and_a_later_line_wins_on_a_device(desk):
    lines = [desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T, not_before=T + M,
                                   batch_id="B-1", idempotency_key="B-1/1"),
             desk.operator_request("WM-404", CommandKind.READ_NOW, T, batch_id="B-1"),
             desk.operator_request(desk.water.device_id, CommandKind.VALVE_OPEN, T, not_before=T + M,
                                   batch_id="B-1"),
             desk.operator_request(desk.water.device_id, CommandKind.VALVE_CLOSE, T, batch_id="B-1",
                                   idempotency_key="B-1/1")]
    results = submit_batch(desk.tenant, lines, desk.devices, [], {}, T)

    first, unknown, reopen, repeat = results
    assert isinstance(unknown, Refusal) and unknown.code is RefusalCode.UNKNOWN_DEVICE
    assert isinstance(first, Accepted) and isinstance(reopen, Accepted) and isinstance(repeat, Accepted)
    assert repeat.duplicate and repeat.command.command_id == lines[0].command_id
    superseded = [t.command for t in reopen.transitions if t.command.command_id == lines[0].command_id]
    assert [c.state for c in superseded] == [CommandState.CANCELLED]


@pytest.mark.parametrize(("profile", "utility", "kind", "can"), [
    ("cjt188-water-2004", Utility.WATER, CommandKind.VALVE_CLOSE, True),
    ("cjt188-gas", Utility.GAS, CommandKind.VALVE_OPEN, True),
    ("cjt188-heat", Utility.HEAT, CommandKind.VALVE_CLOSE, False),  # no valve unless stated
    ("cjt188-heat", Utility.HEAT, CommandKind.READ_NOW, True),
    ("dlt645-single-phase", Utility.ELECTRICITY, CommandKind.RELAY_TRIP, True),
    ("dlt645-single-phase", Utility.ELECTRICITY, CommandKind.RELAY_CLOSE_ALLOWED, True),
    ("dlt645-single-phase", Utility.ELECTRICITY, CommandKind.RELAY_CLOSE_DIRECT, False),  # optional 1C
    ("dlt645-three-phase", Utility.ELECTRICITY, CommandKind.TIME_SYNC, True),
    ("dlt645-single-phase", Utility.ELECTRICITY, CommandKind.SET_PARAMETER, False),
    ("modbus-eastron-sdm120", Utility.ELECTRICITY, CommandKind.READ_NOW, True),
    ("modbus-eastron-sdm120", Utility.ELECTRICITY, CommandKind.RELAY_TRIP, False),
    ("mbus-heat-meter", Utility.HEAT, CommandKind.READ_NOW, False),  # pushes; the gateway does not poll it
    ("pulse-water-10l", Utility.WATER, CommandKind.VALVE_CLOSE, False),
    ("acme-x1", Utility.WATER, CommandKind.READ_NOW, False),
])
def test_what_a_protocol_family_can_do_by_default(profile, utility, kind, can):
    assert (kind in supported_kinds(_device(profile, utility))) is can


def test_stated_capabilities_replace_the_family_defaults():
    heat_with_valve = _device("cjt188-heat", Utility.HEAT, kinds=frozenset({CommandKind.VALVE_CLOSE}))
    assert supported_kinds(heat_with_valve) == {CommandKind.VALVE_CLOSE}
    assert protocol_family("DLT645-three-phase") is ProtocolFamily.DLT645


def test_a_parameter_write_needs_a_profile_that_states_it(make_desk):
    stated = Device(device_id="WM-9", utility=Utility.WATER, profile="cjt188-water-nbiot-9097", active=True,
                    kinds=frozenset({CommandKind.SET_PARAMETER}))
    desk = make_desk(stated)
    write = desk.operator_request("WM-9", CommandKind.SET_PARAMETER, T,
                                  parameter=ParameterSetting(name="report_period_h", value="24"))
    assert isinstance(desk.submit(write, T), Accepted)
