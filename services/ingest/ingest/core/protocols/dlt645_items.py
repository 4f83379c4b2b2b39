"""DL/T 645-2007 data identifiers: each value's name, size, resolution, sign and unit (protocols.md §2.4)."""

from __future__ import annotations

from dataclasses import dataclass

from amiflow_schemas.primitives import RelayState

from ingest.core.protocols.model import MeterStatus


@dataclass(frozen=True)
class Item:
    """One value inside a DL/T 645 reply."""

    name: str
    size: int  # BCD bytes
    decimals: int  # implied decimals: XXXXXX.XX has 2
    unit: str
    signed: bool = False  # §2.4: MSB of the highest byte is the sign
    register: str | None = None  # the billing register it feeds


BLOCK = 0xFF  # DI1 = FF asks for the whole block (total + tariffs, or phases A..C)
_TARIFFS = 0x3F  # DI1 counts tariffs 00 (total) .. 3F (63)
_SETTLEMENTS = 0x0C  # DI0 00 current, 01..0C the last 1..12 settlement days

# §2.4 energies, DI3 = 00: DI2 -> (name, unit, signed, register prefix). Combined energies are
# signed; the forward active register is what billing uses (§5 item 7).
_ENERGY = {
    0x00: ("combined_active", "kWh", True, "combined"),
    0x01: ("forward_active", "kWh", False, ""),
    0x02: ("reverse_active", "kWh", False, "reverse"),
    0x03: ("combined_reactive_1", "kvarh", True, "reactive_1"),
    0x04: ("combined_reactive_2", "kvarh", True, "reactive_2"),
}
# §2.4 instantaneous values, DI3 DI2 = 02 xx: (name, size, decimals, unit, signed, has a total).
_VARIABLES = {
    0x01: ("voltage", 2, 1, "V", False, False),  # XXX.X
    0x02: ("current", 3, 3, "A", True, False),  # XXX.XXX
    0x03: ("active_power", 3, 4, "kW", True, True),  # XX.XXXX (§5 item 8)
    0x04: ("reactive_power", 3, 4, "kvar", True, True),
    0x05: ("apparent_power", 3, 4, "kVA", False, True),
    0x06: ("power_factor", 2, 3, "", True, True),  # X.XXX, no unit (§5 item 8)
}
FREQUENCY = 0x02800002  # XX.XX Hz
DATE, TIME, ADDRESS = 0x04000101, 0x04000102, 0x04000401
STATUS_WORDS = range(0x04000501, 0x04000508)  # run-status words 1..7
STATUS_BLOCK = 0x040005FF


def items_for(di: int, value_bytes: int) -> tuple[Item, ...] | None:
    """The values a reply to ``di`` carries (a block's length sets its count), or None if unknown."""
    di3, di2, di1, di0 = di.to_bytes(4, "big")
    if di3 == 0x00 and di2 in _ENERGY and (di1 <= _TARIFFS or di1 == BLOCK) and di0 <= _SETTLEMENTS:
        return _energy(di2, di1, di0, value_bytes)
    if di3 == 0x02 and di2 in _VARIABLES and di0 == 0x00:
        return _variable(di2, di1)
    if di == FREQUENCY:
        return (Item("frequency", 2, 2, "Hz"),)
    return None


def _energy(kind: int, tariff: int, settlement: int, value_bytes: int) -> tuple[Item, ...]:
    name, unit, signed, prefix = _ENERGY[kind]
    tariffs = range(min(max(value_bytes // 4, 1), _TARIFFS + 1)) if tariff == BLOCK else (tariff,)
    items = []
    for t in tariffs:
        part = "total" if t == 0 else f"T{t}"
        register = None
        if settlement == 0:  # only current values are readings; settlement-day values are history
            register = (prefix or "total") if t == 0 else (f"{prefix}_T{t}" if prefix else f"T{t}")
        suffix = f"_settlement_{settlement}" if settlement else ""
        items.append(Item(f"{name}_{part}{suffix}", 4, 2, unit, signed, register))
    return tuple(items)


def _variable(kind: int, selector: int) -> tuple[Item, ...] | None:
    name, size, decimals, unit, signed, has_total = _VARIABLES[kind]
    phases = {1: "_a", 2: "_b", 3: "_c"}
    if has_total:
        phases[0] = ""
    if selector == BLOCK:
        chosen = sorted(phases)
    elif selector in phases:
        chosen = [selector]
    else:
        return None
    return tuple(Item(f"{name}{phases[p]}", size, decimals, unit, signed) for p in chosen)


# Run-status word bits (DL/T 645-2007 appendix, as reproduced in public meter firmware headers):
# word 1 bit 2 clock battery low, bit 3 meter-reading battery low, bit 4/5 active/reactive power
# reversed; word 3 bit 4 relay state (0 closed, 1 open), bit 6 relay command (0 close, 1 trip),
# bit 7 pre-trip alarm, bit 12 keep-power.
_WORD_BITS = {
    1: ((2, "clock_battery_low"), (3, "reading_battery_low"), (4, "active_power_reversed"),
        (5, "reactive_power_reversed")),
    3: ((3, "programming_allowed"), (4, "relay_open"), (6, "relay_command_trip"), (7, "pre_trip_alarm"),
        (12, "keep_power")),
}


def run_status(words: dict[int, int], raw: bytes) -> MeterStatus:
    """Named bits of run-status words 1 and 3, the relay state, and the battery verdict."""
    flags = [(name, bool(words[n] >> bit & 1)) for n in sorted(words) for bit, name in _WORD_BITS.get(n, ())]
    named = dict(flags)
    relay = None
    if 3 in words:
        # Open with the command at "close" means close-allowed: the customer presses the button.
        relay = RelayState.CONNECTED if not named["relay_open"] else (
            RelayState.DISCONNECTED if named["relay_command_trip"] else RelayState.CLOSE_ALLOWED)
    battery = (named["clock_battery_low"] or named["reading_battery_low"]) if 1 in words else None
    return MeterStatus(raw.hex(), relay=relay, battery_low=battery, flags=tuple(flags))
