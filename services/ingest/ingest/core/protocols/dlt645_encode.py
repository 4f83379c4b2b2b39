"""DL/T 645-2007 requests the head-end sends: read, relay control, broadcast time (protocols.md §2.3, §2.6, §2.7)."""

from __future__ import annotations

from amiflow_schemas.events.commands import RelayAction

from ingest.core.protocols.bcd import WallClock, clock_to_bcd, sum8, wire_address
from ingest.core.protocols.dlt645 import BROADCAST_TIME, READ, RELAY, RELAY_ACTIONS, scramble
from ingest.core.protocols.framing import END, START, WAKEUP
from ingest.core.protocols.profile import Dlt645Settings, MeterProfile, RelaySettings

BROADCAST_ADDRESS = "999999999999"  # §2.2: time sync and freeze go to all meters; none replies
_N1 = {action: code for code, action in RELAY_ACTIONS.items()}
GENERIC = Dlt645Settings(relay=RelaySettings())


def settings_of(profile: MeterProfile | None) -> Dlt645Settings:
    """The profile's DL/T 645 settings, or a generic meter's with a relay."""
    return profile.dlt645 if profile is not None and profile.dlt645 is not None else GENERIC


def dlt645_frame(address: bytes, control: int, plain: bytes, wakeup: int = 0) -> bytes:
    """A whole frame from plain data: FE..., 68 A0..A5 68 C L data+33H CS 16 (CS over scrambled bytes)."""
    if len(address) != 6 or len(plain) > 0xFF:
        raise ValueError("a DL/T 645 frame needs a 6-byte address and at most 255 data bytes")
    body = bytes([START]) + address + bytes([START, control, len(plain)]) + scramble(plain)
    return bytes([WAKEUP]) * wakeup + body + bytes([sum8(body), END])


def parse_data_id(text: str | int) -> int:
    """An 8-hex-digit DL/T 645-2007 data identifier such as ``00010000``."""
    if isinstance(text, int):
        di = text
    else:
        try:
            di = int(text.strip(), 16) if len(text.strip()) == 8 else -1
        except ValueError:
            di = -1
    if not 0 <= di <= 0xFFFFFFFF:
        raise ValueError(f"data identifier {text!r} is not 8 hexadecimal digits (e.g. 00010000)")
    return di


def read_request(address: str, di: str | int = "00010000", *, profile: MeterProfile | None = None) -> bytes:
    """Read one data identifier (C=11); the DI goes out DI0 first (§2.4)."""
    plain = parse_data_id(di).to_bytes(4, "little")
    return dlt645_frame(wire_address(address, 6), READ, plain, settings_of(profile).wakeup_fe)


def relay_request(
    address: str, action: RelayAction, *, valid_until: WallClock | None, profile: MeterProfile | None = None
) -> bytes:
    """Relay control C=1C: PA, password, operator, N1, N2=00, valid-until (all zeros when None)."""
    settings = settings_of(profile)
    relay = settings.relay
    if relay is None:
        raise ValueError("this meter model has no load switch")
    until = clock_to_bcd(valid_until, year_bytes=1) if valid_until is not None else bytes(6)
    # Password and operator are written high digits first in the profile; the wire is LE (§2.4).
    plain = (bytes([relay.password_level]) + bytes.fromhex(relay.password)[::-1]
             + bytes.fromhex(relay.operator)[::-1] + bytes([_N1[action], 0x00]) + until)
    return dlt645_frame(wire_address(address, 6), RELAY, plain, settings.wakeup_fe)


def broadcast_time_request(at: WallClock, *, profile: MeterProfile | None = None) -> bytes:
    """Broadcast time sync C=08 to 999999999999: ss mm hh DD MM YY, +33H like all data (§5 item 10)."""
    return dlt645_frame(wire_address(BROADCAST_ADDRESS, 6), BROADCAST_TIME, clock_to_bcd(at, year_bytes=1),
                        settings_of(profile).wakeup_fe)
