"""Service operations as command sequences: account opened, move-out, meter replacement, downloads."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import (
    CommandCompleted,
    CommandDispatched,
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    ParameterSetting,
    RelayAction,
    RelayCommandIssued,
    ScheduleHold,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import Utility
from commands.core.capabilities import Device
from commands.core.intake import Accepted, submit_batch
from commands.core.operations import (
    OperationContext,
    account_opened,
    meter_replacement,
    move_out,
    parameter_download,
)

SH = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 7, 1, 10, 0, tzinfo=SH)
M = timedelta(minutes=1)
OPERATION = UUID("4d3c1b0a-0000-4000-8000-0000000000aa")
HEAT = Device(device_id="HM-1", utility=Utility.HEAT, profile="cjt188-heat", active=True)
PULSE = Device(device_id="PW-1", utility=Utility.WATER, profile="pulse-water-10l", active=True)


def _context(**changes) -> OperationContext:
    facts = {"operation_id": OPERATION, "requested_by": "op-2", "note": "ticket 4711", "now": T,
             "ttl": timedelta(days=1), "account_id": "ACC-0001"}
    return OperationContext(**{**facts, **changes})


def _run(desk, plan, now=T):
    results = submit_batch(desk.tenant, plan.requests, desk.devices, list(desk.commands.values()), {}, now)
    for result in results:
        assert isinstance(result, Accepted), result
        desk.take(result.transitions, now)


def test_an_opened_account_opens_the_valve_and_allows_the_relay_to_close(desk):
    plan = account_opened([desk.water, desk.electric, HEAT], _context())

    assert [(r.device_id, r.kind) for r in plan.requests] == [
        (desk.water.device_id, CommandKind.VALVE_OPEN), (desk.electric.device_id, CommandKind.RELAY_CLOSE_ALLOWED)]
    assert plan.skipped == (("HM-1", "no valve or relay to open"),)
    assert all(r.origin is CommandOrigin.SERVICE_OPERATION and r.reason is CommandReason.ACCOUNT_OPENED
               and r.operation_id == OPERATION and r.requested_by == "op-2" for r in plan.requests)
    _run(desk, plan)
    desk.tick(T)
    assert [e.action for e in desk.events(ValveCommandIssued)] == [ValveAction.OPEN]
    assert [e.action for e in desk.events(RelayCommandIssued)] == [RelayAction.CLOSE_ALLOWED]


def test_move_out_takes_a_final_read_and_closes_only_after_the_read_has_ended(desk):
    plan = move_out([desk.water], _context())
    read, close = plan.requests
    assert (read.kind, close.kind, close.after_command_id) == (
        CommandKind.READ_NOW, CommandKind.VALVE_CLOSE, read.command_id)

    _run(desk, plan)
    desk.tick(T)
    assert [e.kind for e in desk.events(CommandDispatched)] == [CommandKind.READ_NOW]
    desk.ack(read.command_id, T + M)
    assert len(desk.events(CommandCompleted)) == 1
    desk.tick(T + M)
    assert [e.action for e in desk.events(ValveCommandIssued)] == [ValveAction.CLOSE]


def test_move_out_of_a_meter_that_cannot_be_read_or_closed_remotely_says_so():
    plan = move_out([PULSE], _context())
    assert plan.requests == ()
    assert plan.skipped == (("PW-1", "cannot be read remotely: take the final reading on site"),
                            ("PW-1", "cannot valve_close remotely"))


def test_a_meter_replacement_reads_the_old_meter_then_the_new_one(desk):
    new = Device(device_id="WM-000099999999", utility=Utility.WATER, profile="cjt188-water-2018", active=True)
    plan = meter_replacement(desk.water, new, _context())
    old_read, new_read = plan.requests
    assert (old_read.device_id, new_read.device_id) == (desk.water.device_id, new.device_id)
    assert new_read.after_command_id == old_read.command_id
    assert {r.reason for r in plan.requests} == {CommandReason.METER_REPLACEMENT}


def test_a_parameter_download_is_routine_held_until_its_start_and_skips_devices_that_cannot_take_it():
    writable = Device(device_id="WM-9", utility=Utility.WATER, profile="cjt188-water-nbiot-9097", active=True,
                      kinds=frozenset({CommandKind.SET_PARAMETER}))
    night = T + timedelta(hours=14)
    plan = parameter_download([writable, HEAT], ParameterSetting(name="report_period_h", value="24"), _context(),
                              not_before=night)

    [step] = plan.requests
    assert (step.device_id, step.priority, step.not_before, step.holds) == (
        "WM-9", CommandPriority.ROUTINE, night, (ScheduleHold.NOT_BEFORE,))
    assert step.expires_at == night + timedelta(days=1)
    assert plan.skipped == (("HM-1", "its profile states no parameter writes"),)


def test_planning_an_operation_twice_names_the_same_commands(desk):
    first = move_out([desk.water, desk.electric], _context())
    again = move_out([desk.water, desk.electric], _context(now=T + M))
    assert [r.command_id for r in first.requests] == [r.command_id for r in again.requests]
    assert [r.kind for r in first.requests] == [CommandKind.READ_NOW, CommandKind.VALVE_CLOSE,
                                                CommandKind.READ_NOW, CommandKind.RELAY_TRIP]
