"""The requests the head-end sends a meter, chosen from its registry record and model profile."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import RelayAction, ValveAction
from amiflow_schemas.events.devices import FrameProtocol
from amiflow_schemas.events.registry import DiByteOrder

from ingest.core.protocols import (
    DecodedFrame,
    DiOrder,
    Direction,
    MeterProfile,
    WallClock,
    cjt188_read,
    cjt188_valve,
    dlt645_read,
    dlt645_relay,
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
    raise NotPollable(f"{profile.protocol.value} meters are not polled by the DTU gateway yet")


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


def is_reply_from(address: str) -> Callable[[DecodedFrame], bool]:
    """A reply match: the meter at `address` answering (normal or abnormal reply)."""

    def matches(frame: DecodedFrame) -> bool:
        return frame.address == address and frame.direction is not Direction.REQUEST

    return matches
