"""The meter bus behind one DTU: a request reaches every meter, the addressed one answers.

Like a real RS-485 line, a request for an address nobody has, or a garbled one, gets silence; a
request the addressed meter cannot carry out gets its abnormal reply (§1.2, §2.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from amiflow_schemas.events.devices import FrameProtocol
from amiflow_schemas.primitives import Unit

from ingest.core.protocols import DecodedFrame, Direction, FrameError, RegisterReading, decode_frame
from ingest.simulator import replies as r
from ingest.simulator.electricity import ElectricityMeter, RelayRefused
from ingest.simulator.models import Cjt188Meter, FlowMeter, HeatMeter, SimMeter

# CJ/T 188 request codes (§1.2) and data identifiers (§1.4, §1.5).
CJT188_READ, CJT188_WRITE = 0x01, 0x04
# DL/T 645 function codes (§2.3).
DLT645_BROADCAST_TIME, DLT645_READ, DLT645_RELAY = 0x08, 0x11, 0x1C
BROADCAST_ADDRESS = "999999999999"
BATTERY_STATUS, RELAY_STATUS = "04000501", "04000503"  # run-status words 1 and 3

Values = tuple[r.ReplyKind, bytes, tuple[RegisterReading, ...]]


def _energy(block: bool) -> Callable[[ElectricityMeter, datetime], Values]:
    def read(meter: ElectricityMeter, at: datetime) -> Values:
        reading = meter.energy(at)
        registers = [RegisterReading("total", reading.total, Unit.KWH)]
        if block:
            registers += [RegisterReading(f"T{i}", v, Unit.KWH) for i, v in enumerate(reading.tariffs, start=1)]
        return r.ReplyKind.READING, r.energy_values(reading, block), tuple(registers)
    return read


def _instant(what: str) -> Callable[[ElectricityMeter, datetime], Values]:
    return lambda meter, at: (r.ReplyKind.INSTANT, r.instant_value(meter.instant(at), what), ())


def _status(number: int) -> Callable[[ElectricityMeter, datetime], Values]:
    return lambda meter, _at: (r.ReplyKind.STATUS, r.status_word_value(meter.status_word(number)), ())


# The DL/T 645 data identifiers a simulated meter answers (§2.4): the single-phase profile's reads,
# the plain forward total, run-status words 1..7 and the meter's date and time.
DLT645_READS: dict[int, Callable[[ElectricityMeter, datetime], Values]] = {
    0x00010000: _energy(block=False),
    0x0001FF00: _energy(block=True),
    0x02010100: _instant("voltage"),
    0x02020100: _instant("current"),
    0x02030000: _instant("power"),
    **{0x04000500 + n: _status(n) for n in range(1, 8)},
    0x04000101: lambda m, at: (r.ReplyKind.CLOCK, r.date_value(m.clock_time(at)), ()),
    0x04000102: lambda m, at: (r.ReplyKind.CLOCK, r.time_value(m.clock_time(at)), ()),
}


def cjt188_reading(meter: Cjt188Meter, at: datetime, ser: int = 0) -> r.Reply:
    """The 901F reply: what a poll gets, and what a push meter sends by itself."""
    settings = meter.profile.cjt188
    assert settings is not None
    registers: tuple[RegisterReading, ...]
    if isinstance(meter, HeatMeter):
        heat = meter.reading(at)
        payload = r.heat_payload(heat)
        registers = (RegisterReading("total", heat.heat, Unit.KWH), RegisterReading("volume", heat.volume, Unit.M3))
    else:
        assert isinstance(meter, FlowMeter)
        flow = meter.reading(at)
        payload = r.flow_payload(flow)
        registers = (RegisterReading("total", flow.total, Unit.M3),)
    frame = r.cjt188_reply(settings.meter_type, meter.bus_address, CJT188_READ | 0x80, r.READ_DATA,
                           settings.di_order, ser, payload)
    return _cjt188_reply(meter, r.ReplyKind.READING, frame, at, "901F", registers)


def _cjt188_reply(meter: Cjt188Meter, kind: r.ReplyKind, frame: bytes, at: datetime, di: str | None,
                  registers: tuple[RegisterReading, ...] = ()) -> r.Reply:
    """Every CJ/T 188 reply carries ST; only the 901F reading carries the meter clock (§1.4)."""
    return r.Reply(meter.meter_id, kind, frame, meter.clock_time(at), kind is r.ReplyKind.READING, di, registers,
                   valve=meter.valve_state if meter.has_valve else None, battery_low=meter.battery_low)


def answer_cjt188(meter: Cjt188Meter, request: DecodedFrame, at: datetime) -> r.Reply:
    """Read 901F, valve A017 (with the model's codes), time A015; anything else is refused."""
    settings = meter.profile.cjt188
    assert settings is not None
    ser, control, di = request.ser or 0, request.control, request.data_id
    valve = settings.valve
    kind, reply_control = None, control | 0x80
    if control == CJT188_READ and di == "901F":
        return cjt188_reading(meter, at, ser)
    if valve is not None and control == valve.write_control and di == "A017" and request.valve_command is not None:
        if meter.operate_valve(request.valve_command.action, at):
            kind, reply_control = r.ReplyKind.VALVE, valve.reply_control  # vendors may answer AA (§5 item 4)
    elif control == CJT188_WRITE and di == "A015" and request.set_time is not None:
        meter.set_clock(request.set_time, at)
        kind = r.ReplyKind.TIME_SET
    # A write reply carries ST, the state after the command (§1.5); an abnormal one SER + ST.
    st = r.status_bytes(meter.valve_state, meter.battery_low)
    if kind is None or di is None:
        frame = r.cjt188_abnormal(settings.meter_type, meter.bus_address, control, ser, st)
        return _cjt188_reply(meter, r.ReplyKind.ABNORMAL, frame, at, di)
    frame = r.cjt188_reply(settings.meter_type, meter.bus_address, reply_control, int(di, 16), settings.di_order,
                           ser, st)
    return _cjt188_reply(meter, kind, frame, at, di)


def answer_dlt645(meter: ElectricityMeter, request: DecodedFrame, at: datetime) -> r.Reply:
    """Read the data identifiers above, relay control 1C; anything else is refused."""
    function = request.control & 0x1F
    di = request.data_id
    if function == DLT645_READ and di is not None and int(di, 16) in DLT645_READS:
        kind, values, registers = DLT645_READS[int(di, 16)](meter, at)
        frame = r.dlt645_read_reply(meter.bus_address, int(di, 16), values)
        return r.Reply(meter.meter_id, kind, frame, meter.clock_time(at), False, di, registers,
                       relay=meter.relay if di == RELAY_STATUS else None,
                       battery_low=meter.battery_low if di == BATTERY_STATUS else None)
    if function == DLT645_RELAY:
        err = _relay(meter, request, at)
        if err == 0:
            frame = r.dlt645_ack(meter.bus_address, function)
            return r.Reply(meter.meter_id, r.ReplyKind.RELAY, frame, meter.clock_time(at), False)
    else:
        err = r.ERR_NO_DATA if function == DLT645_READ else r.ERR_OTHER
    frame = r.dlt645_abnormal(meter.bus_address, function, err)
    return r.Reply(meter.meter_id, r.ReplyKind.ABNORMAL, frame, meter.clock_time(at), False, di)


def _relay(meter: ElectricityMeter, request: DecodedFrame, at: datetime) -> int:
    """Carry out a relay command; the ERR bits when the meter refuses, else 0."""
    command, settings = request.relay_command, meter.profile.dlt645
    relay = settings.relay if settings is not None else None
    if command is None or relay is None or command.action is None:
        return r.ERR_OTHER
    # The password travels low byte first; the profile writes it high digits first (§2.6).
    password = bytes.fromhex(relay.password)[::-1].hex()
    if command.password_level != relay.password_level or command.password_hex != password:
        return r.ERR_UNAUTHORISED
    if command.valid_until is not None and meter.clock(at) > command.valid_until:
        return r.ERR_OTHER  # the command's validity ran out before it reached the meter
    try:
        meter.operate_relay(command.action, at)
    except RelayRefused:
        return r.ERR_OTHER
    return 0


class MeterBus:
    """The meters on one DTU's serial line, by bus address."""

    def __init__(self, meters: Sequence[SimMeter]) -> None:
        self.meters = {meter.bus_address: meter for meter in meters}

    def answer(self, raw: bytes, at: datetime) -> r.Reply | None:
        """The reply of the meter ``raw`` addresses, or None (nobody answers on the bus)."""
        try:
            request = decode_frame(raw)
        except FrameError:
            return None  # garbled on the line: no meter recognises its address
        if request.direction is not Direction.REQUEST:
            return None
        if request.address == BROADCAST_ADDRESS and request.control == DLT645_BROADCAST_TIME:
            self._broadcast_time(request, at)
            return None
        meter = self.meters.get(request.address)
        if meter is None:
            return None
        try:  # again with the meter's model: vendor valve codes and layouts live in its profile
            request = decode_frame(raw, meter.profile)
        except FrameError:
            return None
        if isinstance(meter, ElectricityMeter) and request.protocol is FrameProtocol.DLT645_2007:
            return answer_dlt645(meter, request, at)
        if isinstance(meter, Cjt188Meter) and request.protocol is FrameProtocol.CJT188:
            return answer_cjt188(meter, request, at)
        return None

    def _broadcast_time(self, request: DecodedFrame, at: datetime) -> None:
        # §2.7: every DL/T 645 meter on the line sets its clock; none replies.
        if request.set_time is None:
            return
        for meter in self.meters.values():
            if isinstance(meter, ElectricityMeter):
                meter.set_clock(request.set_time, at)
