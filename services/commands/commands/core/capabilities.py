"""What a device can be asked to do, and the checks a request passes before it is accepted.

The commands service does not read ingest's profile files (services share only schemas). It
knows a device from the registry events: its utility and profile name. The profile name's prefix
gives the protocol family (``cjt188-water-2004`` → CJ/T 188), and the family gives conservative
defaults; a tenant states more per profile (a heat meter with a valve, a DL/T 645 meter that
accepts direct close) in ``Device.kinds``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from amiflow_schemas.events.commands import CommandKind, CommandRequested
from amiflow_schemas.primitives import Identifier, Utility

from commands.core.model import Command, Refusal, RefusalCode, Stored


class ProtocolFamily(StrEnum):
    """The wire protocol family a profile name starts with."""

    CJT188 = "cjt188"
    DLT645 = "dlt645"
    MODBUS = "modbus"
    MBUS = "mbus"
    PULSE = "pulse"
    UNKNOWN = "unknown"


_READ_AND_CLOCK = frozenset({CommandKind.READ_NOW, CommandKind.TIME_SYNC})

# protocols.md: CJ/T 188 valve A017 (55 open / 99 close) and time write A015; DL/T 645 relay 1C
# with 1A trip and 1B close-allowed as standard, 1C direct close "optional" (§2.6), and the
# broadcast time sync C=08. A heat meter has no valve unless stated. The gateway polls Modbus
# meters but not M-Bus or pulse counters (they push), so those can do nothing unless stated.
# Parameter writes need vendor documents (§1.5): never a default.
_DEFAULT_KINDS: dict[tuple[ProtocolFamily, Utility | None], frozenset[CommandKind]] = {
    (ProtocolFamily.CJT188, Utility.WATER): _READ_AND_CLOCK | {CommandKind.VALVE_OPEN, CommandKind.VALVE_CLOSE},
    (ProtocolFamily.CJT188, Utility.GAS): _READ_AND_CLOCK | {CommandKind.VALVE_OPEN, CommandKind.VALVE_CLOSE},
    (ProtocolFamily.CJT188, None): _READ_AND_CLOCK,
    (ProtocolFamily.DLT645, Utility.ELECTRICITY): _READ_AND_CLOCK | {CommandKind.RELAY_TRIP,
                                                                    CommandKind.RELAY_CLOSE_ALLOWED},
    (ProtocolFamily.DLT645, None): _READ_AND_CLOCK,
    (ProtocolFamily.MODBUS, None): frozenset({CommandKind.READ_NOW}),
}


class Device(Stored):
    """A device as the registry describes it, with what the tenant states it can do."""

    device_id: Identifier
    utility: Utility
    profile: Identifier  # e.g. "cjt188-water-2004"
    active: bool  # False once the registry reports it removed
    kinds: frozenset[CommandKind] | None = None  # stated capabilities; None: the family's defaults
    site: str | None = None  # the registry's building: operators may be limited to some sites


def protocol_family(profile: str) -> ProtocolFamily:
    """The protocol family a profile name belongs to, by its prefix."""
    head = profile.split("-", 1)[0].lower()
    return next((f for f in ProtocolFamily if f.value == head), ProtocolFamily.UNKNOWN)


def supported_kinds(device: Device) -> frozenset[CommandKind]:
    """The command kinds a device can carry out."""
    if device.kinds is not None:
        return device.kinds
    family = protocol_family(device.profile)
    return _DEFAULT_KINDS.get((family, device.utility), _DEFAULT_KINDS.get((family, None), frozenset()))


def check_request(requested: CommandRequested, device: Device | None, now: datetime) -> Refusal | None:
    """Why a request cannot be accepted, or None when it can."""
    if device is None or device.device_id != requested.device_id:
        return Refusal(RefusalCode.UNKNOWN_DEVICE, f"no device {requested.device_id} in the registry")
    if not device.active:
        return Refusal(RefusalCode.DEVICE_REMOVED, f"device {device.device_id} was removed from the network")
    kinds = supported_kinds(device)
    if requested.kind not in kinds:
        can = ", ".join(sorted(k.value for k in kinds)) or "nothing"
        family = protocol_family(device.profile).value
        return Refusal(RefusalCode.KIND_NOT_SUPPORTED,
                       f"device {device.device_id} ({device.profile}, {family}) cannot do {requested.kind.value};"
                       f" it can do: {can}")
    if requested.expires_at <= now:
        return Refusal(RefusalCode.WINDOW_PASSED,
                       f"the command's window ended at {requested.expires_at.isoformat()}, before now")
    return None


def first_for_key(idempotency_key: str | None, known: Command | None) -> Command | None:
    """The command an idempotency key already answered, if the key was used before."""
    if idempotency_key is None or known is None or known.request.idempotency_key != idempotency_key:
        return None
    return known
