"""Meter protocol codecs for the head-end, free of I/O: CJ/T 188, DL/T 645, Modbus, M-Bus, pulses.

Bytes from a connection go through a ``StreamSplitter``; each ``WireFrame`` goes to
``decode_frame``; ``register_values`` and ``device_status`` turn the result into event fields.
The encoders build the requests the head-end sends. See /shared/specs/protocols.md.
"""

from ingest.core.protocols.bcd import WallClock
from ingest.core.protocols.cjt188_encode import read_address_request as cjt188_read_address
from ingest.core.protocols.cjt188_encode import read_request as cjt188_read
from ingest.core.protocols.cjt188_encode import valve_request as cjt188_valve
from ingest.core.protocols.cjt188_encode import write_time_request as cjt188_write_time
from ingest.core.protocols.decode import decode_frame
from ingest.core.protocols.dlt645_encode import broadcast_time_request as dlt645_broadcast_time
from ingest.core.protocols.dlt645_encode import read_request as dlt645_read
from ingest.core.protocols.dlt645_encode import relay_request as dlt645_relay
from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.mapping import RegisterReading, device_status, meter_time, register_values
from ingest.core.protocols.modbus import read_registers_request as modbus_read_registers
from ingest.core.protocols.model import (
    DecodedFrame,
    DiOrder,
    Direction,
    Measurement,
    MeterStatus,
    RelayCommand,
    ValveCommand,
)
from ingest.core.protocols.profile import MeterProfile, ProfileError, parse_profile
from ingest.core.protocols.pulse import pulse_register, pulse_total
from ingest.core.protocols.splitter import Framing, RejectedBytes, StreamSplitter, WireFrame

__all__ = [
    "DecodedFrame",
    "DiOrder",
    "Direction",
    "FrameError",
    "Framing",
    "Measurement",
    "MeterProfile",
    "MeterStatus",
    "ProfileError",
    "RegisterReading",
    "RejectedBytes",
    "RelayCommand",
    "StreamSplitter",
    "ValveCommand",
    "WallClock",
    "WireFrame",
    "cjt188_read",
    "cjt188_read_address",
    "cjt188_valve",
    "cjt188_write_time",
    "decode_frame",
    "device_status",
    "dlt645_broadcast_time",
    "dlt645_read",
    "dlt645_relay",
    "meter_time",
    "modbus_read_registers",
    "parse_profile",
    "pulse_register",
    "pulse_total",
    "register_values",
]
