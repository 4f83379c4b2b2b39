"""Meter model profiles: what differs between models is data, validated here (protocols.md §4 item 6)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from amiflow_schemas.events.commands import RelayAction
from amiflow_schemas.events.devices import FrameProtocol
from amiflow_schemas.payload import shadowing_abc_register
from amiflow_schemas.primitives import ExactDecimal, PositiveDecimal, RegisterName, Unit, Utility
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ingest.core.protocols.model import DiOrder


class ProfileError(ValueError):
    """A profile document that does not validate; the message names each bad field."""


def _hex_int(value: Any) -> Any:
    # YAML reads 0x55 as an int but "2B" or "A017" only as text: accept both spellings.
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0x")
        try:
            return int(text, 16)
        except ValueError:
            raise ValueError(f"{value!r} is not a hexadecimal number") from None
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


HexByte = Annotated[int, BeforeValidator(_hex_int), Field(ge=0, le=0xFF)]
Cjt188DataId = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[0-9A-F]{4}$")]
Dlt645DataId = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[0-9A-F]{8}$")]
HexText = Annotated[str, BeforeValidator(_upper)]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldKind(StrEnum):
    """How one field of a CJ/T 188 data layout is encoded."""

    BCD_UNIT = "bcd_unit"  # BCD LE then a unit byte (the standard 901F fields, §1.4)
    UNIT_BCD = "unit_bcd"  # a unit byte then BCD LE (tanmoyAtb's vendor DI 9097)
    BCD = "bcd"  # BCD LE in a fixed unit (temperatures, working hours)
    CLOCK = "clock"  # ss mm hh DD MM YYlo YYhi
    STATUS = "status"  # ST, two bytes
    SKIP = "skip"  # bytes the head-end does not use


with shadowing_abc_register():

    class LayoutField(_Part):
        """One field of a CJ/T 188 payload after DI and SER."""

        kind: FieldKind
        name: str = Field(default="", pattern=r"^[a-z0-9_]*$")
        size: int = Field(default=4, ge=1, le=64)  # BCD bytes (without the unit byte), or bytes skipped
        decimals: int = Field(default=2, ge=0, le=8)
        unit: str = ""  # the unit of a plain BCD field
        register: RegisterName | None = None  # the billing register this field feeds

        @property
        def width(self) -> int:
            """Bytes the field takes on the wire."""
            fixed = {FieldKind.CLOCK: 7, FieldKind.STATUS: 2}
            extra = 1 if self.kind in (FieldKind.BCD_UNIT, FieldKind.UNIT_BCD) else 0
            return fixed.get(self.kind, self.size + extra)


class UnitScale(_Part):
    """What a CJ/T 188 unit byte means for one model: value x factor is in ``unit``."""

    unit: str
    factor: PositiveDecimal


class StatusBit(_Part):
    """A vendor bit of the two ST bytes; a name that is a DeviceAlarmFlag value raises that alarm."""

    byte: Literal[1, 2]
    bit: int = Field(ge=0, le=7)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class ValveCodes(_Part):
    """Valve write (DI A017): control codes and value bytes (§1.5, §5 item 4)."""

    write_control: HexByte = 0x04
    reply_control: HexByte = 0x84
    open: HexByte = 0x55
    close: HexByte = 0x99
    exercise: HexByte | None = 0xAA
    half_open: HexByte | None = 0x77
    meter_type: HexByte | None = None  # a different T in valve frames (§5 item 14)


class Cjt188Settings(_Part):
    """A CJ/T 188 model: type byte, DI order on send, units, status bits, vendor layouts."""

    meter_type: HexByte
    di_order: Literal[DiOrder.HIGH_FIRST, DiOrder.LOW_FIRST] = DiOrder.HIGH_FIRST
    wakeup_fe: int = Field(default=4, ge=0, le=8)
    valve: ValveCodes | None = None  # None: the model has no valve
    unit_codes: dict[HexByte, UnitScale] = Field(default_factory=dict)
    st_layout: Literal["standard", "high_bits"] = "standard"  # §5 item 2: where valve and battery sit
    status_bits: tuple[StatusBit, ...] = ()
    data_ids: dict[Cjt188DataId, tuple[LayoutField, ...]] = Field(default_factory=dict)
    reads: tuple[Cjt188DataId, ...] = ("901F",)


class RelaySettings(_Part):
    """DL/T 645 relay control defaults (§2.6); password and operator as printed, high digits first."""

    password_level: HexByte = 0x02
    password: HexText = Field(default="000000", pattern=r"^[0-9A-F]{6}$")
    operator: HexText = Field(default="00000000", pattern=r"^[0-9A-F]{8}$")
    close_action: RelayAction = RelayAction.CLOSE_ALLOWED  # what "close" sends: N1 = 1B or 1C
    valid_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)  # N3..N8 = send time + this

    @model_validator(mode="after")
    def _close_is_a_close(self) -> Self:
        if self.close_action not in (RelayAction.CLOSE_ALLOWED, RelayAction.CLOSE_DIRECT):
            raise ValueError("close_action must be close_allowed or close_direct")
        return self


class Dlt645Settings(_Part):
    """A DL/T 645-2007 model."""

    phases: Literal[1, 3] = 1
    wakeup_fe: int = Field(default=4, ge=0, le=8)
    reads: tuple[Dlt645DataId, ...] = ("00010000",)
    relay: RelaySettings | None = None  # None: no load switch


with shadowing_abc_register():

    class ModbusRegister(_Part):
        """One value in a Modbus register map."""

        name: str = Field(pattern=r"^[a-z0-9_]+$")
        function: Literal[3, 4] = 3  # holding or input registers
        address: int = Field(ge=0, le=0xFFFF)
        type: Literal["uint16", "int16", "uint32", "int32", "float32"]
        word_order: Literal["big", "little"] = "big"  # of 32-bit values: high word first, or low first
        scale: ExactDecimal = Decimal(1)
        unit: str
        register: RegisterName | None = None

        @property
        def count(self) -> int:
            """Registers the value spans."""
            return 1 if self.type.endswith("16") else 2


class ModbusSettings(_Part):
    """A Modbus model: unit id and register map."""

    unit_id: int = Field(default=1, ge=0, le=247)
    registers: tuple[ModbusRegister, ...] = Field(min_length=1)

    def read_blocks(self) -> list[tuple[int, int, int]]:
        """(function, first address, count) reads covering the map, contiguous registers merged."""
        blocks: list[tuple[int, int, int]] = []
        for reg in sorted(self.registers, key=lambda r: (r.function, r.address)):
            if blocks:
                function, start, count = blocks[-1]
                # 125 registers is the most one read may ask for (Modbus application protocol 6.3).
                if function == reg.function and reg.address <= start + count and reg.address + reg.count - start <= 125:
                    blocks[-1] = (function, start, max(count, reg.address + reg.count - start))
                    continue
            blocks.append((reg.function, reg.address, reg.count))
        return blocks


class MbusSettings(_Part):
    """An M-Bus (EN 13757) model."""

    primary_address: int | None = Field(default=None, ge=0, le=250)


with shadowing_abc_register():

    class PulseSettings(_Part):
        """A pulse counter: each pulse is ``weight`` of ``unit``."""

        weight: PositiveDecimal
        unit: Unit
        register: RegisterName = "total"


_SECTION = {
    FrameProtocol.CJT188: "cjt188", FrameProtocol.DLT645_2007: "dlt645", FrameProtocol.MODBUS_RTU: "modbus",
    FrameProtocol.MODBUS_TCP: "modbus", FrameProtocol.MBUS: "mbus", FrameProtocol.JSON: "pulse",
}


class MeterProfile(_Part):
    """A meter model: its protocol, utility and the settings of that protocol."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    description: str = Field(min_length=1)
    protocol: FrameProtocol
    utility: Utility
    cjt188: Cjt188Settings | None = None
    dlt645: Dlt645Settings | None = None
    modbus: ModbusSettings | None = None
    mbus: MbusSettings | None = None
    pulse: PulseSettings | None = None

    @model_validator(mode="after")
    def _one_section_for_the_protocol(self) -> Self:
        wanted = _SECTION.get(self.protocol)
        if wanted is None:
            known = sorted(p.value for p in _SECTION)
            raise ValueError(f"protocol {self.protocol.value} has no codec; use one of {known}")
        present = [s for s in sorted(set(_SECTION.values())) if getattr(self, s) is not None]
        if wanted not in present and wanted != "mbus":
            raise ValueError(f"protocol {self.protocol.value} needs a '{wanted}' section")
        if extra := [s for s in present if s != wanted]:
            raise ValueError(f"sections {extra} do not belong to a {self.protocol.value} profile")
        return self


def parse_profile(document: Mapping[str, Any], source: str = "profile") -> MeterProfile:
    """Validate a profile document, raising ProfileError that names every bad field."""
    try:
        return MeterProfile.model_validate(dict(document))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ProfileError(f"{source}: {problems}") from None
