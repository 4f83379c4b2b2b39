"""The requests the head-end sends a meter, chosen from its registry record and model profile."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import ParameterSetting, RelayAction, ValveAction
from amiflow_schemas.events.devices import FrameProtocol
from amiflow_schemas.events.registry import DiByteOrder

from ingest.core.protocols import (
    DecodedFrame,
    DiOrder,
    Direction,
    Framing,
    MeterProfile,
    WallClock,
    cjt188_read,
    cjt188_valve,
    cjt188_write_time,
    dlt645_broadcast_time,
    dlt645_read,
    dlt645_relay,
    modbus_read_registers,
)
from ingest.core.registry import MeterDetails

_WIRE_ORDER = {DiByteOrder.DI_90_1F: DiOrder.HIGH_FIRST, DiByteOrder.DI_1F_90: DiOrder.LOW_FIRST}


class NotPollable(ValueError):
    """The meter's protocol is not one the gateway polls (it pushes, or is read another way)."""


def effective_profile(profile: MeterProfile, details: MeterDetails) -> MeterProfile:
    """The model profile with this meter's own settings applied (its DI byte order on send)."""
    if profile.cjt188 is None or details.di_order is None:
        return profile
    cjt188 = profile.cjt188.model_copy(update={"di_order": _WIRE_ORDER[details.di_order]})
    return profile.model_copy(update={"cjt188": cjt188})


def read_requests(details: MeterDetails, profile: MeterProfile) -> list[bytes]:
    """The reads of one poll: the data identifiers the model profile lists, in order."""
    if profile.cjt188 is not None:
        return [cjt188_read(details.bus_address, di, profile=profile) for di in profile.cjt188.reads]
    if profile.dlt645 is not None:
        return [dlt645_read(details.bus_address, di, profile=profile) for di in profile.dlt645.reads]
    if profile.modbus is not None:
        unit = modbus_unit(details, profile)
        tcp = profile.protocol is FrameProtocol.MODBUS_TCP
        return [modbus_read_registers(unit, function, start, count, tcp=tcp)
                for function, start, count in profile.modbus.read_blocks()]
    raise NotPollable(f"{profile.protocol.value} meters are not polled by the DTU gateway yet")


def modbus_unit(details: MeterDetails, profile: MeterProfile) -> int:
    """A Modbus meter's unit id: its bus address when that is a number, else the profile's."""
    if details.bus_address.isdigit():
        return int(details.bus_address)
    assert profile.modbus is not None
    return profile.modbus.unit_id


def bus_framing(profiles: Iterable[MeterProfile]) -> Framing:
    """How a DTU's bus is framed, from its meters' models: Modbus has no start byte, so it is declared."""
    kinds = {p.protocol for p in profiles}
    if kinds == {FrameProtocol.MODBUS_RTU}:
        return Framing.MODBUS_RTU
    if kinds == {FrameProtocol.MODBUS_TCP}:
        return Framing.MODBUS_TCP
    return Framing.START_68  # CJ/T 188, DL/T 645 and M-Bus share the 68 start byte and mix on one bus


def valve_command(details: MeterDetails, profile: MeterProfile, action: ValveAction) -> bytes:
    """CJ/T 188 valve control A017 with the model's codes."""
    if profile.protocol is not FrameProtocol.CJT188:
        raise ValueError(f"a valve command needs a CJ/T 188 meter, not {profile.protocol.value}")
    return cjt188_valve(details.bus_address, action, profile=profile)


def relay_command(details: MeterDetails, profile: MeterProfile, action: RelayAction, now: datetime,
                  tz: ZoneInfo) -> bytes:
    """DL/T 645 relay control 1C, valid for the profile's window from now (the meter's local time)."""
    if profile.dlt645 is None or profile.dlt645.relay is None:
        raise ValueError(f"meter model {profile.name} has no load switch")
    until = WallClock.of((now + timedelta(minutes=profile.dlt645.relay.valid_minutes)).astimezone(tz))
    return dlt645_relay(details.bus_address, action, valid_until=until, profile=profile)


def time_sync_command(details: MeterDetails, profile: MeterProfile, now: datetime, tz: ZoneInfo) -> bytes:
    """Set the meter clock to ``now`` as the meter shows it (local time in ``tz``, §1.4, §2.7)."""
    wall = WallClock.of(now.astimezone(tz))
    if is_broadcast_time_sync(profile):
        # §2.7: the broadcast address reaches every DL/T 645 meter on the bus; none of them replies.
        return dlt645_broadcast_time(wall, profile=profile)
    if profile.protocol is FrameProtocol.CJT188:
        return cjt188_write_time(details.bus_address, wall, profile=profile)
    raise ValueError(f"meter model {profile.name} ({profile.protocol.value}) has no time sync: only DL/T 645 "
                     "(broadcast C=08) and CJ/T 188 (write A015) meters are set by the head-end")


def is_broadcast_time_sync(profile: MeterProfile) -> bool:
    """A DL/T 645 time sync is a broadcast: sent, never answered."""
    return profile.protocol is FrameProtocol.DLT645_2007


def parameter_write(profile: MeterProfile, parameter: ParameterSetting) -> bytes:
    """A parameter write: no profile here defines one, so every model refuses it."""
    # protocols.md §1.5: the parameter DIs (A010-A014, A016, A019) and DL/T 645 writes need the vendor's
    # documents; a guessed frame could set a wrong value on a real meter, which costs more than a refusal.
    raise ValueError(f"no parameter write is defined for profile {profile.name}, so {parameter.name!r} "
                     "cannot be set (parameter writes need the vendor's documents, protocols.md §1.5)")


def is_reply_from(address: str) -> Callable[[DecodedFrame], bool]:
    """A reply match: the meter at `address` answering (normal or abnormal reply)."""
    wanted = comparable_address(address)

    def matches(frame: DecodedFrame) -> bool:
        return comparable_address(frame.address) == wanted and frame.direction is not Direction.REQUEST

    return matches


def is_command_reply_from(address: str) -> Callable[[DecodedFrame], bool]:
    """The answer to a command (valve, relay, clock, parameter) from the meter at `address`: a reply that
    carries no readings. A reading the meter pushes while the command is on the bus is uplink, to be
    published like any other; taken for the answer, it would be lost and acknowledge a command it says
    nothing about."""
    replied = is_reply_from(address)
    return lambda frame: replied(frame) and not frame.values


def comparable_address(address: str) -> str:
    """The form of a bus address used to match replies and meters."""
    # A Modbus unit id may be registered as "007" and decoded as "7"; BCD addresses keep every digit.
    return str(int(address)) if address.isdigit() and len(address) <= 3 else address
