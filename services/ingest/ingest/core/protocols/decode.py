"""The single entry: bytes in, a DecodedFrame out, or a FrameError saying exactly why not."""

from __future__ import annotations

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason

from ingest.core.protocols.cjt188 import decode_cjt188
from ingest.core.protocols.dlt645 import decode_dlt645
from ingest.core.protocols.errors import FrameError
from ingest.core.protocols.framing import (
    START,
    START_68_PROBES,
    WAKEUP,
    Probe,
    ProbeKind,
    Prober,
    probe_cjt188,
    probe_dlt645,
    probe_mbus_long,
)
from ingest.core.protocols.mbus import decode_mbus
from ingest.core.protocols.modbus import probe_modbus_rtu, probe_modbus_tcp
from ingest.core.protocols.modbus_map import decode_modbus, reply_request
from ingest.core.protocols.model import DecodedFrame
from ingest.core.protocols.profile import MeterProfile

PROBES_BY_PROTOCOL: dict[FrameProtocol, tuple[Prober, ...]] = {
    FrameProtocol.CJT188: (probe_cjt188,),
    FrameProtocol.DLT645_2007: (probe_dlt645,),
    FrameProtocol.MBUS: (probe_mbus_long,),
    FrameProtocol.MODBUS_RTU: (probe_modbus_rtu,),
    FrameProtocol.MODBUS_TCP: (probe_modbus_tcp,),
}
# Without a profile: the 68-framed families first, then Modbus (whose frames have no marker).
ANY_PROTOCOL: tuple[Prober, ...] = (*START_68_PROBES, probe_modbus_rtu, probe_modbus_tcp)
_NAMES = {FrameProtocol.CJT188: "CJ/T 188", FrameProtocol.DLT645_2007: "DL/T 645-2007",
          FrameProtocol.DLT645_1997: "DL/T 645-1997", FrameProtocol.MBUS: "M-Bus",
          FrameProtocol.MODBUS_RTU: "Modbus RTU", FrameProtocol.MODBUS_TCP: "Modbus TCP"}


def decode_frame(raw: bytes, profile: MeterProfile | None = None, *, request: bytes | None = None) -> DecodedFrame:
    """Detect the protocol and decode one frame (FE preamble allowed); raises only FrameError.

    ``profile`` names the meter model (its protocol, units, vendor layouts); ``request`` is the
    Modbus request a register reply answers, which tells where the registers start.
    """
    try:
        return _decode(bytes(raw), profile, request)
    except FrameError:
        raise
    except Exception as exc:  # a decoder bug must reach the gateway as a rejected frame, not a crash
        raise FrameError(RejectionReason.INVALID_VALUE, f"internal decoder error: {exc!r}") from exc


def probes_for(profile: MeterProfile | None) -> tuple[Prober, ...]:
    """The frame probes that apply to a meter of this profile (all of them without one)."""
    if profile is None:
        return ANY_PROTOCOL
    return PROBES_BY_PROTOCOL.get(profile.protocol, ANY_PROTOCOL)


def _decode(data: bytes, profile: MeterProfile | None, request: bytes | None) -> DecodedFrame:
    probes = probes_for(profile)
    body = data.lstrip(bytes([WAKEUP]))
    if body[:1] != bytes([START]) or not set(probes) & set(START_68_PROBES):
        body = data  # only 68-framed protocols have a FE preamble (§1.1, §2.1)
    preamble = len(data) - len(body)
    if not body:
        raise FrameError(RejectionReason.TRUNCATED, "no bytes to decode" if not data else "only FE wake-up bytes")
    verdict = _judge(body, probes)
    if verdict.kind is not ProbeKind.FRAME:
        raise _rejection(verdict, body)
    if verdict.protocol is FrameProtocol.CJT188:
        return decode_cjt188(body, preamble, profile)
    if verdict.protocol in (FrameProtocol.DLT645_2007, FrameProtocol.DLT645_1997):
        return decode_dlt645(body, preamble)
    if verdict.protocol is FrameProtocol.MBUS:
        return decode_mbus(body, verdict.direction, profile)
    return decode_modbus(body, verdict.protocol, verdict.direction, profile, reply_request(request, verdict.protocol))


def _judge(body: bytes, probes: tuple[Prober, ...]) -> Probe:
    """A probe that spans the whole input wins; else the first probe that recognised a start speaks."""
    verdicts = [probe(body, 0) for probe in probes]
    for verdict in verdicts:
        if verdict.kind is ProbeKind.FRAME and verdict.length == len(body):
            return verdict
    return next((v for v in verdicts if v.kind is not ProbeKind.NO_FRAME), verdicts[0])


def _rejection(verdict: Probe, body: bytes) -> FrameError:
    name = _NAMES.get(verdict.protocol, "frame")
    if verdict.kind is ProbeKind.BAD_FRAME:
        assert verdict.reason is not None
        return FrameError(verdict.reason, f"{name}: {verdict.detail}", protocol=verdict.protocol)
    if verdict.kind is ProbeKind.NEED_MORE:
        return FrameError(RejectionReason.TRUNCATED, f"wrong length: the {name} frame needs at least {verdict.length} "
                          f"bytes (its length field says so), got {len(body)}", protocol=verdict.protocol)
    if verdict.kind is ProbeKind.FRAME:
        extra = len(body) - verdict.length
        return FrameError(RejectionReason.INVALID_VALUE, f"wrong length: the {name} frame ends after "
                          f"{verdict.length} bytes but {extra} more follow", protocol=verdict.protocol)
    return FrameError(RejectionReason.UNKNOWN_PROTOCOL, f"no CJ/T 188, DL/T 645, M-Bus or Modbus frame starts with "
                      f"{body[:4].hex(' ').upper()}")
