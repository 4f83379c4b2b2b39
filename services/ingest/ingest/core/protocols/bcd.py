"""Packed BCD, meter addresses and meter wall clocks: the encodings CJ/T 188 and DL/T 645 share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal

# protocols.md §2.4: "a field of all FF means not supported / invalid"; CJ/T 188 meters do the same.
UNSUPPORTED = 0xFF
_DIGITS = frozenset("0123456789")


class NotBcdError(ValueError):
    """A field that should be packed BCD holds a nibble above 9."""


def sum8(frame_part: bytes) -> int:
    """The CJ/T 188 / DL/T 645 / M-Bus checksum: the byte sum mod 256."""
    return sum(frame_part) & 0xFF


def is_bcd(field: bytes) -> bool:
    """True when every nibble is a decimal digit."""
    return all((b >> 4) < 10 and (b & 0x0F) < 10 for b in field)


def is_filled(field: bytes, byte: int) -> bool:
    """True when the field is non-empty and every byte equals ``byte``."""
    return bool(field) and all(b == byte for b in field)


def bcd_int_le(field: bytes) -> int:
    """The unsigned integer of a BCD field sent least significant byte first."""
    if not is_bcd(field):
        raise NotBcdError(f"{field.hex(' ').upper()} is not BCD")
    return int(field[::-1].hex()) if field else 0


def bcd_value(field: bytes, decimals: int, *, signed: bool = False) -> Decimal | None:
    """A BCD LE field scaled by its implied decimals; None when the meter filled it with FF."""
    if is_filled(field, UNSUPPORTED):
        return None
    negative = False
    if signed and field and field[-1] & 0x80:
        # protocols.md §2.4: the most significant bit of the highest byte is the sign.
        field = field[:-1] + bytes([field[-1] & 0x7F])
        negative = True
    value = Decimal(bcd_int_le(field)).scaleb(-decimals)
    return -value if negative and value else value  # a set sign bit on zero is still 0, not -0


def to_bcd_le(number: int, size: int) -> bytes:
    """``number`` as ``size`` bytes of BCD, least significant byte first."""
    digits = f"{number:0{size * 2}d}"
    if number < 0 or len(digits) > size * 2:
        raise ValueError(f"{number} does not fit {size} BCD bytes")
    return bytes.fromhex(digits)[::-1]


def printed_address(wire: bytes) -> str:
    """The address as printed on the nameplate: the wire bytes reversed (A0 is sent first)."""
    return wire[::-1].hex().upper()


def wire_address(printed: str, size: int) -> bytes:
    """The wire bytes (A0 first) of a nameplate address; short numbers get leading zeros."""
    text = printed.strip().upper()
    if text and set(text) == {"A"}:
        text = "A" * (size * 2)  # the wildcard is AA in every byte (§1.2, §2.2)
    elif not text or not set(text) <= _DIGITS:
        raise ValueError(f"address {printed!r} must be up to {size * 2} decimal digits (or all A for the wildcard)")
    if len(text) > size * 2:
        raise ValueError(f"address {printed!r} has more than {size * 2} digits")
    return bytes.fromhex(text.rjust(size * 2, "0"))[::-1]


@dataclass(frozen=True, order=True)
class WallClock:
    """A meter's local wall-clock reading; the protocols carry no UTC offset (§1.4, §2.7)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int

    def aware(self, tz: tzinfo) -> datetime:
        """This wall time in the meter's time zone."""
        return datetime(self.year, self.month, self.day, self.hour, self.minute, self.second, tzinfo=tz)

    def isoformat(self) -> str:
        """ISO 8601 without an offset, e.g. ``2017-01-09T17:20:06``."""
        return (f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
                f"T{self.hour:02d}:{self.minute:02d}:{self.second:02d}")

    @classmethod
    def of(cls, moment: datetime) -> WallClock:
        """The wall-clock fields of ``moment`` as written (convert to the meter's zone first)."""
        return cls(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def wall_clock(year: int, month: int, day: int, hour: int, minute: int, second: int) -> WallClock | None:
    """A WallClock when the fields make a real date and time, else None."""
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
        return None
    try:
        date(year, month, day)
    except ValueError:
        return None
    return WallClock(year, month, day, hour, minute, second)


def clock_from_bcd(fields: bytes, year_bytes: int) -> tuple[WallClock | None, bool]:
    """Decode ``ss mm hh DD MM YY[YY]`` (BCD, seconds first); returns (clock, invalid flag).

    All-00 and all-FF mean "no clock" (protocols.md §4 item 3), which is not flagged invalid;
    non-BCD bytes or an impossible date are flagged, because the meter did send a clock.
    """
    if is_filled(fields, 0x00) or is_filled(fields, UNSUPPORTED):
        return None, False
    if not is_bcd(fields):
        return None, True
    ss, mm, hh, dd, mo = (bcd_int_le(fields[i : i + 1]) for i in range(5))
    year = bcd_int_le(fields[5 : 5 + year_bytes])
    if year_bytes == 1:
        year += 2000  # DL/T 645 sends YY only; meters of this standard are all post-2000
    clock = wall_clock(year, mo, dd, hh, mm, ss)
    return clock, clock is None


def clock_to_bcd(clock: WallClock, year_bytes: int) -> bytes:
    """Encode ``ss mm hh DD MM YY[YY]`` as BCD, seconds first."""
    year = clock.year if year_bytes == 2 else clock.year % 100
    head = bytes(to_bcd_le(v, 1)[0] for v in (clock.second, clock.minute, clock.hour, clock.day, clock.month))
    return head + to_bcd_le(year, year_bytes)
