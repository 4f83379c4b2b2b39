"""The downlink's pure rules: which lifecycle events become mailbox sends, how a retry meets the row
of its command id, and which frames each kind of command puts on the bus (against the worked frames
of protocols.md §1.2, §1.5 and §2.7)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandDispatched,
    CommandKind,
    CommandReason,
    ParameterSetting,
    RelayAction,
    RelayCommandIssued,
    ValveAction,
    ValveCommandIssued,
)
from amiflow_schemas.primitives import Unit, Utility
from ingest.core.downlink import (
    Arrival,
    DownlinkKind,
    Exchange,
    MailboxCommand,
    MailboxState,
    arrival,
    bus_order,
    mailbox_command,
    resend_note,
    send_detail,
)
from ingest.core.meter_requests import is_command_reply_from, is_reply_from, read_requests
from ingest.core.protocols import decode_frame
from ingest.core.registry import MeterDetails
from ingest.profiles import load_profile
from ingest.simulator import Fleet, FleetSpec
from ingest.simulator.bus import answer_cjt188, cjt188_reading

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
WATER = MeterDetails(Utility.WATER, "cjt188-water-2004", "00201510270588", Unit.M3)
ELECTRICITY = MeterDetails(Utility.ELECTRICITY, "dlt645-single-phase", "123456789012", Unit.KWH)
MODBUS = MeterDetails(Utility.ELECTRICITY, "modbus-eastron-sdm120", "7", Unit.KWH)


def command(kind: DownlinkKind, action: str | None = None, parameter: ParameterSetting | None = None) -> MailboxCommand:
    return MailboxCommand(uuid.uuid4(), "M-1", kind, action, parameter, None, NOW + timedelta(hours=1))


def dispatched(kind: CommandKind, attempt: int = 1, parameter: ParameterSetting | None = None) -> CommandDispatched:
    return CommandDispatched(command_id=uuid.uuid4(), device_id="M-1", kind=kind, parameter=parameter,
                             attempt=attempt, dispatched_at=NOW, expires_at=NOW + timedelta(hours=1))


def issued_facts() -> dict[str, object]:
    return {"command_id": uuid.uuid4(), "device_id": "M-1", "reason": CommandReason.OPERATOR, "requested_by": "op",
            "account_id": None, "issued_at": NOW, "not_before": NOW + timedelta(minutes=5),
            "expires_at": NOW + timedelta(hours=1)}


def test_valve_and_relay_commands_are_taken_from_their_issued_events_with_the_action() -> None:
    valve = ValveCommandIssued(**issued_facts(), action=ValveAction.CLOSE)
    relay = RelayCommandIssued(**issued_facts(), action=RelayAction.TRIP)

    [as_valve, as_relay] = [mailbox_command(valve), mailbox_command(relay)]

    assert as_valve is not None and as_relay is not None
    assert (as_valve.kind, as_valve.action, as_valve.not_before) == (DownlinkKind.VALVE, "close", valve.not_before)
    assert (as_relay.kind, as_relay.action, as_relay.command_id) == (DownlinkKind.RELAY, "trip", relay.command_id)


@pytest.mark.parametrize("kind", [CommandKind.VALVE_OPEN, CommandKind.VALVE_CLOSE, CommandKind.RELAY_TRIP,
                                  CommandKind.RELAY_CLOSE_ALLOWED, CommandKind.RELAY_CLOSE_DIRECT])
def test_a_dispatched_valve_or_relay_kind_is_left_to_its_issued_event(kind: CommandKind) -> None:
    assert mailbox_command(dispatched(kind)) is None


def test_read_now_time_sync_and_set_parameter_come_by_command_dispatched_with_their_send_number() -> None:
    setting = ParameterSetting(name="report_period", value="3600")

    read = mailbox_command(dispatched(CommandKind.READ_NOW, attempt=2))
    sync = mailbox_command(dispatched(CommandKind.TIME_SYNC))
    write = mailbox_command(dispatched(CommandKind.SET_PARAMETER, parameter=setting))

    assert read is not None and (read.kind, read.send, read.action) == (DownlinkKind.READ_NOW, 2, None)
    assert sync is not None and sync.kind is DownlinkKind.TIME_SYNC
    assert write is not None and (write.kind, write.parameter) == (DownlinkKind.SET_PARAMETER, setting)


def test_other_lifecycle_events_are_not_sends() -> None:
    ack = CommandAcknowledged(command_id=uuid.uuid4(), device_id="M-1", acknowledged_at=NOW, attempt=1,
                              gateway_id="DTU-1", reported_valve_state=None, reply_hex=None)
    assert mailbox_command(ack) is None


@pytest.mark.parametrize(("existing", "expected"), [
    (None, Arrival.NEW),
    (MailboxState.PENDING, Arrival.STILL_PENDING),
    (MailboxState.ACKNOWLEDGED, Arrival.RESEND),
    (MailboxState.FAILED, Arrival.RESEND),
    (MailboxState.EXPIRED, Arrival.RESEND),
])
def test_a_send_reopens_an_ended_row_and_leaves_a_pending_one_waiting(existing: MailboxState | None,
                                                                       expected: Arrival) -> None:
    assert arrival(existing) is expected


def test_a_resend_note_says_how_the_previous_send_ended_and_survives_the_new_sends_outcomes() -> None:
    note = resend_note(MailboxState.FAILED, 3, "no reply to 3 sends", send=2)
    assert note == "re-send (attempt 2); the previous send ended failed after 3 bus attempt(s): no reply to 3 sends"

    waiting = send_detail(note, "no reply yet")
    assert waiting == f"{note}\nno reply yet"
    assert send_detail(waiting, None) == note  # acknowledged: the re-send record stays, "no reply yet" goes
    assert send_detail("no reply yet", None) is None  # a first send keeps no history
    assert send_detail(None, "expired before the device could be reached") == "expired before the device could " \
                                                                              "be reached"


def test_a_resend_of_a_resend_keeps_one_line_of_history() -> None:
    first = resend_note(MailboxState.ACKNOWLEDGED, 1, None, send=None)
    second = resend_note(MailboxState.ACKNOWLEDGED, 1, send_detail(first, None), send=3)
    assert "\n" not in second and second.startswith("re-send (attempt 3)") and "re-send; the previous" in second


def test_dlt645_time_sync_is_the_worked_broadcast_frame_in_the_tenants_zone() -> None:
    # §2.7: 2017-06-05 10:22:51 local = 02:22:51 UTC in Shanghai; data 51 22 10 05 06 17, each +33H.
    at = datetime(2017, 6, 5, 2, 22, 51, tzinfo=UTC)
    order = bus_order(command(DownlinkKind.TIME_SYNC), ELECTRICITY, load_profile("dlt645-single-phase"), at, SHANGHAI)

    assert order.exchange is Exchange.BROADCAST
    assert [r.hex(" ").upper() for r in order.requests] == [
        "FE FE FE FE 68 99 99 99 99 99 99 68 08 06 84 55 43 38 39 4A 4B 16"]


def test_cjt188_time_sync_writes_a015_in_the_901f_clock_layout_and_waits_for_the_reply() -> None:
    # §1.2/§1.5: C=04, L=0A, DI A0 15 (90 1F order), SER 00, ss mm hh DD MM YY YY; CS = sum8 from the 68 = B2.
    at = datetime(2017, 1, 9, 9, 20, 6, tzinfo=UTC)  # 17:20:06 in Shanghai
    order = bus_order(command(DownlinkKind.TIME_SYNC), WATER, load_profile("cjt188-water-2004"), at, SHANGHAI)

    assert order.exchange is Exchange.WRITE
    assert [r.hex(" ").upper() for r in order.requests] == [
        "FE FE FE FE 68 10 88 05 27 10 15 20 00 04 0A A0 15 00 06 20 17 09 01 17 20 B2 16"]


def test_time_sync_follows_the_zone_not_utc() -> None:
    profile = load_profile("cjt188-water-2004")
    [in_shanghai] = bus_order(command(DownlinkKind.TIME_SYNC), WATER, profile, NOW, SHANGHAI).requests
    [in_utc] = bus_order(command(DownlinkKind.TIME_SYNC), WATER, profile, NOW, ZoneInfo("UTC")).requests

    shanghai_clock, utc_clock = decode_frame(in_shanghai).set_time, decode_frame(in_utc).set_time
    assert shanghai_clock is not None and utc_clock is not None
    assert (shanghai_clock.hour, utc_clock.hour) == (14, 6)


def test_a_modbus_meter_has_no_time_sync() -> None:
    with pytest.raises(ValueError, match=r"modbus-eastron-sdm120 \(modbus_rtu\) has no time sync"):
        bus_order(command(DownlinkKind.TIME_SYNC), MODBUS, load_profile("modbus-eastron-sdm120"), NOW, SHANGHAI)


def test_read_now_sends_the_meters_poll_reads() -> None:
    profile = load_profile("dlt645-single-phase")
    order = bus_order(command(DownlinkKind.READ_NOW), ELECTRICITY, profile, NOW, SHANGHAI)

    assert order.exchange is Exchange.READ
    assert list(order.requests) == read_requests(ELECTRICITY, profile) and len(order.requests) == 5


@pytest.mark.parametrize("profile", ["cjt188-water-2004", "dlt645-single-phase", "modbus-eastron-sdm120"])
def test_no_profile_defines_a_parameter_write_so_set_parameter_is_refused(profile: str) -> None:
    setting = ParameterSetting(name="report_period", value="3600")
    with pytest.raises(ValueError, match=f"no parameter write is defined for profile {profile}.*'report_period'"):
        bus_order(command(DownlinkKind.SET_PARAMETER, parameter=setting), WATER, load_profile(profile), NOW, SHANGHAI)


def test_valve_and_relay_sends_are_single_writes_and_need_the_right_meter() -> None:
    valve = bus_order(command(DownlinkKind.VALVE, "close"), WATER, load_profile("cjt188-water-2004"), NOW, SHANGHAI)
    relay = bus_order(command(DownlinkKind.RELAY, "trip"), ELECTRICITY, load_profile("dlt645-single-phase"), NOW,
                      SHANGHAI)

    assert (valve.exchange, relay.exchange) == (Exchange.WRITE, Exchange.WRITE)
    close, trip = decode_frame(valve.requests[0]), decode_frame(relay.requests[0])
    assert close.valve_command is not None and close.valve_command.action is ValveAction.CLOSE
    assert trip.relay_command is not None and trip.relay_command.action is RelayAction.TRIP
    with pytest.raises(ValueError, match="CJ/T 188"):
        bus_order(command(DownlinkKind.VALVE, "close"), ELECTRICITY, load_profile("dlt645-single-phase"), NOW,
                  SHANGHAI)
    with pytest.raises(ValueError, match="without an action"):
        bus_order(command(DownlinkKind.RELAY), ELECTRICITY, load_profile("dlt645-single-phase"), NOW, SHANGHAI)


def test_a_reading_the_meter_pushes_while_a_command_awaits_its_answer_is_not_taken_for_the_answer() -> None:
    # Taken for it, the reading would never be published and the command acknowledged by a frame about nothing.
    meter = next(m for m in Fleet.build(FleetSpec(meters=8, dtus=1, seed=1)).valve_meters() if m.has_valve)
    details = MeterDetails(Utility.WATER, meter.profile.name, meter.bus_address, Unit.M3)
    close = bus_order(command(DownlinkKind.VALVE, "close"), details, meter.profile, NOW, SHANGHAI).requests[0]
    answer = decode_frame(answer_cjt188(meter, decode_frame(close), NOW).frame, meter.profile)
    pushed = decode_frame(cjt188_reading(meter, NOW).frame, meter.profile)

    assert is_reply_from(meter.bus_address)(pushed)
    assert is_command_reply_from(meter.bus_address)(answer)
    assert not is_command_reply_from(meter.bus_address)(pushed)
