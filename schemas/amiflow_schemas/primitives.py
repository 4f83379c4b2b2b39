"""Value types shared by every event: identifiers, exact decimals, money, units, utilities."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

# Ids travel as Kafka keys, header values, log fields and URL segments: whitespace or control
# characters in any of them would split a meter's history across keys or break a log line.
_NO_SPACE_OR_CONTROL = r"^[^\s\x00-\x1f\x7f-\x9f]+$"

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=_NO_SPACE_OR_CONTROL)
]
"""A meter, device, account, gateway, tenant or user id: 1-128 printable non-space characters."""

ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
"""The name of the service that produced an event, e.g. ``ingest``."""

EventTypeName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z0-9]{1,63}$")]
"""A past-tense event name in PascalCase, e.g. ``ReadingReceived``."""

RegisterName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
"""A meter register: ``total``, ``T1``..``T4`` (time-of-use), ``reverse``, ``flow`` …"""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 alphabetic currency code, e.g. ``CNY``."""

TimeZoneName = Annotated[
    str, StringConstraints(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
]
"""An IANA time-zone name, e.g. ``Asia/Shanghai``; a tenant's local day is defined in it."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
"""Human-readable text (a reason, a description); bounded so one event cannot bloat a topic."""

# 256 KiB of raw bytes at most, so an event carrying them stays under Kafka's default 1 MB
# record limit; the producer truncates longer input and says so.
HexBytes = Annotated[str, StringConstraints(max_length=524_288, pattern=r"^(?:[0-9a-f]{2})+$")]
"""Raw bytes as lowercase hex (what ``bytes.hex()`` gives); protocol engineers read frames so."""


def _reject_binary_float(value: Any) -> Any:
    # A float has already lost the decimal digits (0.1 is not 0.1), so it is refused rather than
    # rounded: money and meter registers must arrive as strings, integers or Decimals.
    if isinstance(value, float | bool):
        raise ValueError("give a decimal as a string, an integer or a Decimal, never a float")
    return value


def _plain_decimal(value: Decimal) -> str:
    # str(Decimal) may write '1E-7'; fixed-point text is what downstream ledgers and people
    # expect. A negative zero is written as 0 so "non-negative" text never starts with '-'.
    # str() is fixed-point already unless it shows an exponent; it is the cheaper call, and every
    # decimal of every event every hop encodes goes through here.
    text = str(value)
    if "E" in text or text.startswith("-0"):
        return format(value.copy_abs() if value.is_zero() else value, "f")
    return text


_NO_FLOAT = BeforeValidator(_reject_binary_float)
_AS_TEXT = PlainSerializer(_plain_decimal, return_type=str, when_used="json")


def _decimal_text(pattern: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern})


# The bounds (Field) come before the float check: so placed, pydantic enforces them inside its
# compiled decimal validator instead of adding a Python call per bound, on every decimal of every
# event every hop decodes (bench/amiflow_bench/decode.py). Same checks, same error messages.
ExactDecimal = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    _NO_FLOAT,
    _AS_TEXT,
    _decimal_text(r"^-?[0-9]+(\.[0-9]+)?$"),
]
"""A finite Decimal; JSON carries it as a fixed-point string so no digit is ever lost."""

NonNegativeDecimal = Annotated[
    Decimal,
    Field(allow_inf_nan=False, ge=0),
    _NO_FLOAT,
    _AS_TEXT,
    _decimal_text(r"^[0-9]+(\.[0-9]+)?$"),
]
"""An exact decimal that is zero or more (a charge, a quantity consumed)."""

PositiveDecimal = Annotated[
    Decimal,
    Field(allow_inf_nan=False, gt=0),
    _NO_FLOAT,
    _AS_TEXT,
    _decimal_text(r"^(?!0+(\.0+)?$)[0-9]+(\.[0-9]+)?$"),
]
"""An exact decimal above zero (a payment)."""


class Utility(StrEnum):
    """The metered service; one prepaid account may pay for several."""

    WATER = "water"
    GAS = "gas"
    HEAT = "heat"
    ELECTRICITY = "electricity"


class Unit(StrEnum):
    """The unit of a register or a consumption; ingest scales device units to one of these."""

    M3 = "m3"
    KWH = "kWh"
    MWH = "MWh"
    GJ = "GJ"
    KVARH = "kvarh"


# Heat meters report energy and also the volume of water that carried it; electricity meters
# report reactive energy beside active energy. Anything else is a scaling bug upstream.
UNITS_BY_UTILITY: dict[Utility, frozenset[Unit]] = {
    Utility.WATER: frozenset({Unit.M3}),
    Utility.GAS: frozenset({Unit.M3}),
    Utility.HEAT: frozenset({Unit.GJ, Unit.KWH, Unit.MWH, Unit.M3}),
    Utility.ELECTRICITY: frozenset({Unit.KWH, Unit.KVARH}),
}


def check_unit(utility: Utility, unit: Unit) -> None:
    """Raise ValueError when ``unit`` cannot measure ``utility``."""
    allowed = UNITS_BY_UTILITY[utility]
    if unit not in allowed:
        names = ", ".join(sorted(allowed))
        raise ValueError(f"unit {unit.value} is not a {utility.value} unit (expected {names})")


class ValveState(StrEnum):
    """A valve's position as the meter reports it (CJ/T 188 ST bits D1 D0: 00, 01, 11)."""

    OPEN = "open"
    CLOSED = "closed"
    ABNORMAL = "abnormal"


class RelayState(StrEnum):
    """An electricity meter's load switch as read back from DL/T 645 run-status word 3."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    # Tripped, with closing allowed: the customer presses the meter's button to restore supply.
    CLOSE_ALLOWED = "close_allowed"


class ReadingSource(StrEnum):
    """How a reading or status entered the platform."""

    HTTP = "http"
    DTU = "dtu"
    SIMULATOR = "simulator"
    MANUAL = "manual"
    IMPORT = "import"
