"""Meter-side frames: the replies a CJ/T 188 or DL/T 645 meter puts on its bus (protocols.md §1, §2).

Built with the codec's low-level frame builders and BCD helpers, so a reply is byte for byte what
the head-end's decoder expects; every builder is tested by decoding its output with decode_frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from amiflow_schemas.primitives import RelayState, ValveState

from ingest.core.protocols import DiOrder, RegisterReading
from ingest.core.protocols.bcd import clock_to_bcd, to_bcd_le, wire_address
from ingest.core.protocols.cjt188_encode import cjt188_frame, data_id_bytes
from ingest.core.protocols.dlt645_encode import dlt645_frame
from ingest.simulator.electricity import EnergyReading, Instant
from ingest.simulator.models import FlowReading, HeatReading

# Meters often put a couple of FE wake-up bytes before their replies too (§1.1, §2.1).
REPLY_PREAMBLE = 2
READ_DATA = 0x901F
# §1.4 unit codes: 2C m3, 05 kWh, 17 kW, 35 m3/h.
M3, KWH, KW, M3_PER_H = 0x2C, 0x05, 0x17, 0x35
# §2.5 ERR bits.
ERR_OTHER, ERR_NO_DATA, ERR_UNAUTHORISED = 0x01, 0x02, 0x04
_VALVE_BITS = {ValveState.OPEN: 0b00, ValveState.CLOSED: 0b01, ValveState.ABNORMAL: 0b11}


class ReplyKind(StrEnum):
    """What a reply is, for the delivery ledger."""

    READING = "reading"  # registers: CJ/T 188 901F, DL/T 645 energy
    INSTANT = "instant"  # DL/T 645 voltage, current, power
    STATUS = "status"  # DL/T 645 run-status words
    CLOCK = "clock"  # DL/T 645 date or time
    VALVE = "valve"  # CJ/T 188 A017 obeyed
    RELAY = "relay"  # DL/T 645 1C obeyed
    TIME_SET = "time_set"  # CJ/T 188 A015 obeyed
    ABNORMAL = "abnormal"  # the meter refused


@dataclass(frozen=True)
class Reply:
    """One frame a meter answered with, and the facts it carries."""

    meter_id: str
    kind: ReplyKind
    frame: bytes
    meter_clock: datetime  # the meter's clock when it answered (aware, in the meter's zone)
    carries_clock: bool  # CJ/T 188 readings do; the head-end stamps the others with its receive time
    data_id: str | None = None
    registers: tuple[RegisterReading, ...] = ()
    # The status the frame reports, as the head-end's DeviceStatusReported will carry it.
    valve: ValveState | None = None  # CJ/T 188 ST, meters with a valve
    relay: RelayState | None = None  # DL/T 645 run-status word 3
    battery_low: bool | None = None  # CJ/T 188 ST, or DL/T 645 run-status word 1


def bcd(value: Decimal, decimals: int, size: int) -> bytes:
    """A non-negative value as BCD LE with ``decimals`` implied decimals; refuses to round."""
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {decimals} decimals")
    return to_bcd_le(int(scaled), size)


def status_bytes(valve: ValveState, battery_low: bool) -> bytes:
    """ST: byte 1 D1 D0 valve, D2 battery low (§1.4); byte 2 is vendor-defined and left clear."""
    return bytes([_VALVE_BITS[valve] | (0b100 if battery_low else 0), 0x00])


def flow_payload(reading: FlowReading) -> bytes:
    """901F after DI + SER for water and gas: flow, settlement flow, clock, ST (19 bytes)."""
    return (bcd(reading.total, 2, 4) + bytes([M3]) + bcd(reading.settlement, 2, 4) + bytes([M3])
            + clock_to_bcd(reading.clock, year_bytes=2) + status_bytes(reading.valve, reading.battery_low))


def heat_payload(reading: HeatReading) -> bytes:
    """901F after DI + SER for heat (43 bytes, the layout the codec follows from xijunzhou cj188.h)."""
    return (bcd(reading.settlement_heat, 2, 4) + bytes([KWH]) + bcd(reading.heat, 2, 4) + bytes([KWH])
            + bcd(reading.power, 2, 4) + bytes([KW]) + bcd(reading.flow_rate, 4, 4) + bytes([M3_PER_H])
            + bcd(reading.volume, 2, 4) + bytes([M3]) + bcd(reading.supply_c, 2, 3) + bcd(reading.return_c, 2, 3)
            + bcd(Decimal(reading.working_hours), 0, 3) + clock_to_bcd(reading.clock, year_bytes=2)
            + status_bytes(ValveState.OPEN, reading.battery_low))


def cjt188_reply(meter_type: int, address: str, control: int, di: int, order: DiOrder, ser: int,
                 payload: bytes) -> bytes:
    """A normal reply with control ``control`` (81, 84, or a vendor valve code such as AA) and data
    DI (in the meter's order) + SER + payload."""
    data = data_id_bytes(di, order) + bytes([ser]) + payload
    return cjt188_frame(meter_type, wire_address(address, 7), control, data, REPLY_PREAMBLE)


def cjt188_abnormal(meter_type: int, address: str, control: int, ser: int, st: bytes) -> bytes:
    """An abnormal reply: C = request | C0, data = SER + ST, no DI (KingDa, §1.2)."""
    return cjt188_frame(meter_type, wire_address(address, 7), control | 0xC0, bytes([ser]) + st, REPLY_PREAMBLE)


def energy_values(reading: EnergyReading, block: bool) -> bytes:
    """00010000: the total; 0001FF00: total then T1..T4, each XXXXXX.XX kWh."""
    values = (reading.total, *reading.tariffs) if block else (reading.total,)
    return b"".join(bcd(v, 2, 4) for v in values)


def instant_value(instant: Instant, what: str) -> bytes:
    """Phase A voltage (XXX.X), current (XXX.XXX) or total active power (XX.XXXX), §2.4."""
    if what == "voltage":
        return bcd(instant.voltage, 1, 2)
    if what == "current":
        return bcd(instant.current, 3, 3)
    return bcd(instant.power, 4, 3)


def status_word_value(word: int) -> bytes:
    """A run-status word, low byte first (§2.4)."""
    return word.to_bytes(2, "little")


def date_value(clock: datetime) -> bytes:
    """04000101: YYMMDDWW sent WW DD MM YY, BCD; WW 0 = Sunday."""
    weekday = (clock.weekday() + 1) % 7
    return bytes([weekday]) + clock_to_bcd_fields(clock.day, clock.month, clock.year % 100)


def time_value(clock: datetime) -> bytes:
    """04000102: hhmmss sent ss mm hh, BCD."""
    return clock_to_bcd_fields(clock.second, clock.minute, clock.hour)


def clock_to_bcd_fields(*fields: int) -> bytes:
    return b"".join(to_bcd_le(field, 1) for field in fields)


def dlt645_read_reply(address: str, di: int, values: bytes) -> bytes:
    """Read reply C=91: DI (DI0 first) + values; the frame builder adds 33H to every byte (§2.2)."""
    return dlt645_frame(wire_address(address, 6), 0x91, di.to_bytes(4, "little") + values, REPLY_PREAMBLE)


def dlt645_ack(address: str, function: int) -> bytes:
    """A normal reply without data, e.g. 9C to relay control (§2.6)."""
    return dlt645_frame(wire_address(address, 6), function | 0x80, b"", REPLY_PREAMBLE)


def dlt645_abnormal(address: str, function: int, err: int) -> bytes:
    """An abnormal reply: C = request | C0, data = ERR (§2.5)."""
    return dlt645_frame(wire_address(address, 6), function | 0xC0, bytes([err]), REPLY_PREAMBLE)
