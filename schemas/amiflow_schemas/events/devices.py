"""Device status reports and frames ingest could not understand."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, Field

from amiflow_schemas.payload import EventPayload, PayloadPart
from amiflow_schemas.primitives import (
    ExactDecimal,
    HexBytes,
    Identifier,
    ReadingSource,
    RelayState,
    Text,
    Utility,
    ValveState,
)


class BatteryLevel(StrEnum):
    """A battery's state as the device judges it (CJ/T 188 ST bit D2 is ok/low)."""

    OK = "ok"
    LOW = "low"


class BatteryStatus(PayloadPart):
    """A device battery: the device's verdict, plus measurements when the device sends them."""

    level: BatteryLevel
    voltage_v: ExactDecimal | None
    remaining_percent: Annotated[int, Field(ge=0, le=100)] | None


class DeviceAlarmFlag(StrEnum):
    """Alarm bits a device raises itself (vendor ST bytes, DL/T 645 run-status words)."""

    MAGNETIC_TAMPER = "magnetic_tamper"
    COVER_OPEN = "cover_open"
    EMPTY_PIPE = "empty_pipe"
    REVERSE_FLOW = "reverse_flow"
    OVER_RANGE = "over_range"
    CLOCK_INVALID = "clock_invalid"
    POWER_FAILURE = "power_failure"
    DEVICE_FAULT = "device_fault"


class DeviceStatusReported(EventPayload):
    """A device's reported state: valve or relay, battery, and the alarm bits it raised."""

    EVENT_TYPE: ClassVar[str] = "DeviceStatusReported"
    EVENT_VERSION: ClassVar[int] = 2

    meter_id: Identifier
    utility: Utility
    reported_at: AwareDatetime  # the device's clock when it has one, else the receive time
    valve: ValveState | None  # None: the device has no valve
    relay: RelayState | None  # None: no load switch, or its state was not read
    battery: BatteryStatus | None  # None: mains powered, or the battery state was not sent
    alarms: Annotated[tuple[DeviceAlarmFlag, ...], Field(max_length=len(DeviceAlarmFlag))]
    status_word_hex: HexBytes | None  # the raw status bytes, kept because vendors reuse bits
    gateway_id: Identifier | None
    # Optional additions within v2: the meter clock minus the head-end's receive time (positive: the
    # meter runs ahead), and the radio signal of the link (CSQ 0-31 as cellular modules report it).
    clock_drift_s: int | None = None
    signal_csq: Annotated[int, Field(ge=0, le=31)] | None = None


class DeviceStatusReportedV1(EventPayload):
    """Version 1 of DeviceStatusReported, kept to document and decode old events."""

    EVENT_TYPE: ClassVar[str] = "DeviceStatusReported"
    EVENT_VERSION: ClassVar[int] = 1

    meter_id: Identifier
    utility: Utility
    reported_at: AwareDatetime
    valve_state: ValveState | None
    battery_low: bool
    status_word_hex: HexBytes | None
    gateway_id: Identifier | None


def upcast_device_status_reported_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: valve_state becomes valve; the battery flag becomes a battery status."""
    v2 = {k: v for k, v in payload.items() if k not in ("valve_state", "battery_low")}
    v2["valve"] = payload["valve_state"]
    # v1 never read the relay and kept device alarm bits only in the raw status word: the
    # honest v2 values are "unknown" and "none decoded", not guesses from vendor bits.
    v2["relay"] = None
    v2["alarms"] = []
    low = payload["battery_low"]
    if not isinstance(low, bool):
        raise ValueError(f"battery_low must be true or false, not {low!r}")
    level = BatteryLevel.LOW if low else BatteryLevel.OK
    v2["battery"] = {"level": level.value, "voltage_v": None, "remaining_percent": None}
    return v2


class FrameProtocol(StrEnum):
    """The wire protocol a rejected frame was taken for."""

    CJT188 = "cjt188"
    DLT645_2007 = "dlt645_2007"
    DLT645_1997 = "dlt645_1997"
    MODBUS_RTU = "modbus_rtu"
    MODBUS_TCP = "modbus_tcp"
    MBUS = "mbus"
    JSON = "json"
    UNKNOWN = "unknown"


class RejectionReason(StrEnum):
    """Why ingest could not turn bytes into a reading or status."""

    CHECKSUM_MISMATCH = "checksum_mismatch"
    BAD_END_BYTE = "bad_end_byte"
    TRUNCATED = "truncated"
    UNKNOWN_PROTOCOL = "unknown_protocol"
    UNSUPPORTED_DATA_ID = "unsupported_data_id"
    UNKNOWN_DEVICE = "unknown_device"
    ABNORMAL_REPLY = "abnormal_reply"
    INVALID_VALUE = "invalid_value"
    INVALID_REQUEST = "invalid_request"


class FrameRejected(EventPayload):
    """Bytes ingest received but could not use, kept raw with the reason (nothing is silent)."""

    EVENT_TYPE: ClassVar[str] = "FrameRejected"
    EVENT_VERSION: ClassVar[int] = 1

    source: ReadingSource
    source_id: Identifier  # the gateway (DTU) id, or the HTTP client id; the Kafka key
    meter_id: Identifier | None  # when the address could still be decoded
    protocol: FrameProtocol
    reason: RejectionReason
    detail: Text
    received_at: AwareDatetime
    raw_hex: HexBytes
    raw_truncated: bool  # True when raw_hex holds only the first part of an oversized input
