"""Fuzzing every frame decoder: whatever bytes arrive, a decoded frame or a FrameError — nothing else, no hang.

decode_frame turns a decoder bug into FrameError("internal decoder error", cause=the bug) so the
gateway survives it; the property here is stricter: no FrameError may carry such a cause, so every
leak of IndexError, struct.error, UnicodeDecodeError … shows up as a failure with its traceback.

Seeds are frames known to decode: the public vectors, the encoders' requests, the simulator's
replies, and the frames written out in this folder's tests. A mutation rebuilds a frame of the
same family around changed data, then usually fixes the length field and the checksum up again,
so the decoder gets past framing and meets the broken content itself. The deadline catches hangs.
AMIFLOW_FUZZ_EXAMPLES raises the number of cases per test for a long hunt (default 400).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import RelayAction, ValveAction
from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from amiflow_schemas.primitives import ValveState
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from ingest.core.protocols import (
    DiOrder,
    FrameError,
    Framing,
    RejectedBytes,
    StreamSplitter,
    WallClock,
    WireFrame,
    cjt188_read,
    cjt188_read_address,
    cjt188_valve,
    cjt188_write_time,
    decode_frame,
    device_status,
    dlt645_broadcast_time,
    dlt645_read,
    dlt645_relay,
    meter_time,
    modbus_read_registers,
    register_values,
)
from ingest.core.protocols.bcd import sum8
from ingest.core.protocols.modbus import crc16
from ingest.profiles import load_all
from ingest.simulator import replies

HERE = Path(__file__).resolve().parent
_HEX_LITERAL = re.compile(r'fromhex\(\s*"([0-9A-Fa-f ]+)"\s*\)')
_CLOCK = WallClock(2026, 11, 21, 8, 30, 5)


def _shared_folder() -> Path:
    configured = os.environ.get("AMIFLOW_SHARED")
    if configured:
        return Path(configured)
    for parent in HERE.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "services").is_dir():
            return parent.parent / "shared"
    raise RuntimeError("cannot find the repository root above " + str(HERE))


def vector_frames() -> list[bytes]:
    """Every frame of shared/data/protocol-vectors.json, good and bad (missing file: an error)."""
    vectors = json.loads((_shared_folder() / "data" / "protocol-vectors.json").read_text(encoding="utf-8"))
    return [bytes.fromhex(v["hex"]) for v in vectors]


def _test_file_frames() -> list[bytes]:
    found = []
    for path in sorted(HERE.glob("test_*.py")):
        found += [bytes.fromhex(text) for text in _HEX_LITERAL.findall(path.read_text(encoding="utf-8"))]
    return found


def _encoder_frames() -> list[bytes]:
    return [
        cjt188_read("00201510270588", 0x901F, ser=3), cjt188_read_address(ser=1),
        cjt188_valve("00201510270588", ValveAction.CLOSE), cjt188_write_time("00201510270588", _CLOCK),
        dlt645_read("201510270588", "00010000"), dlt645_read("201510270588", "0201FF00"),
        dlt645_relay("201510270588", RelayAction.TRIP, valid_until=_CLOCK), dlt645_broadcast_time(_CLOCK),
        modbus_read_registers(1, 4, 0, 2), modbus_read_registers(17, 3, 0, 5, tcp=True, transaction_id=9),
    ]


def _reply_frames() -> list[bytes]:
    flow = (replies.bcd(Decimal("1234.56"), 2, 4) + bytes([replies.M3]) + replies.bcd(Decimal("1200"), 2, 4)
            + bytes([replies.M3]) + bytes.fromhex("05302108211120") + replies.status_bytes(ValveState.OPEN, True))
    heat = (replies.bcd(Decimal("10"), 2, 4) + bytes([replies.KWH]) + replies.bcd(Decimal("12.5"), 2, 4)
            + bytes([replies.KWH]) + replies.bcd(Decimal("1.25"), 2, 4) + bytes([replies.KW])
            + replies.bcd(Decimal("0.1234"), 4, 4) + bytes([replies.M3_PER_H]) + replies.bcd(Decimal("145"), 2, 4)
            + bytes([replies.M3]) + replies.bcd(Decimal("65.5"), 2, 3) + replies.bcd(Decimal("45"), 2, 3)
            + replies.bcd(Decimal(3412), 0, 3) + bytes.fromhex("05302108211120") + b"\x04\x00")
    energy = b"".join(replies.bcd(Decimal(v), 2, 4) for v in ("100.5", "40", "30", "20", "10.5"))
    return [
        replies.cjt188_reply(0x10, "00201510270588", 0x81, 0x901F, DiOrder.HIGH_FIRST, 7, flow),
        replies.cjt188_reply(0x20, "00201510270588", 0x81, 0x901F, DiOrder.LOW_FIRST, 7, heat),
        replies.cjt188_reply(0x10, "00201510270588", 0x84, 0xA017, DiOrder.HIGH_FIRST, 1, b"\x01\x00"),
        replies.cjt188_abnormal(0x10, "00201510270588", 0x01, 2, b"\x44\x00"),
        replies.dlt645_read_reply("201510270588", 0x0001FF00, energy),
        replies.dlt645_read_reply("201510270588", 0x04000503, replies.status_word_value(0x0050)),
        replies.dlt645_read_reply("201510270588", 0x040005FF, b"".join(
            replies.status_word_value(w) for w in (0x000C, 0, 0x0010, 0, 0, 0, 0))),
        replies.dlt645_read_reply("201510270588", 0x02010100, replies.bcd(Decimal("220.1"), 1, 2)),
        replies.dlt645_ack("201510270588", 0x1C), replies.dlt645_abnormal("201510270588", 0x11, replies.ERR_NO_DATA),
        _rtu(bytes([1, 4, 4]) + bytes.fromhex("43660000")),  # SDM120 voltage 230.0 V (float32)
        _rtu(bytes([1, 0x84, 0x02])),  # exception reply: illegal data address
        bytes.fromhex("0009 0000 000d 11 03 0a") + bytes(range(10)),  # TCP reply: 5 registers
    ]


def _rtu(body: bytes) -> bytes:
    return body + crc16(body)


def seed_frames() -> list[bytes]:
    """Every distinct seed that decodes, without its FE preamble (FE runs are a mutation of their own)."""
    seeds: dict[bytes, None] = {}
    for raw in (*vector_frames(), *_test_file_frames(), *_encoder_frames(), *_reply_frames()):
        try:
            decode_frame(raw)
        except FrameError:
            continue
        seeds.setdefault(raw.lstrip(b"\xfe") if raw.lstrip(b"\xfe")[:1] == b"\x68" else raw, None)
    return list(seeds)


@dataclass(frozen=True)
class Layout:
    """A frame cut into the part the mutations change (``data``) and what rebuilds it around that."""

    protocol: FrameProtocol
    head: bytes
    data: bytes

    def rebuild(self, data: bytes, *, length: int | None = None, checksum: bool = True) -> bytes:
        """The frame around ``data``; ``length`` overrides the length field (a lie), ``checksum`` fixes it up."""
        p = self.protocol
        if p is FrameProtocol.MODBUS_RTU:
            return data + (crc16(data) if checksum else b"\x00\x00")
        if p is FrameProtocol.MODBUS_TCP:
            declared = len(data) if length is None else length
            return self.head[:4] + (declared & 0xFFFF).to_bytes(2, "big") + data
        data = data[:255]
        declared = (len(data) if length is None else length) & 0xFF
        if p is FrameProtocol.MBUS:
            head = bytes([0x68, declared, declared, 0x68])
            summed = data
        else:  # CJ/T 188 and DL/T 645: the L byte ends the header; the sum runs from the first 68
            head = self.head[:-1] + bytes([declared])
            summed = head + data
        cs = sum8(summed) if checksum else (sum8(summed) + 1) & 0xFF
        return head + data + bytes([cs, 0x16])


def layout_of(frame: bytes) -> Layout:
    """The seed's family and where its data lies (the seed must decode)."""
    protocol = decode_frame(frame).protocol
    if protocol is FrameProtocol.CJT188:
        return Layout(protocol, frame[:11], frame[11:-2])
    if protocol in (FrameProtocol.DLT645_2007, FrameProtocol.DLT645_1997):
        return Layout(protocol, frame[:10], frame[10:-2])
    if protocol is FrameProtocol.MBUS:
        return Layout(protocol, frame[:4], frame[4:-2])
    if protocol is FrameProtocol.MODBUS_TCP:
        return Layout(protocol, frame[:6], frame[6:])
    return Layout(protocol, b"", frame[:-2])


SEEDS = seed_frames()
LAYOUTS = [layout_of(seed) for seed in SEEDS]
FAMILIES = sorted({layout.protocol for layout in LAYOUTS})
# Family first, then a seed of it: the few M-Bus and Modbus seeds get as many cases as the many others.
layouts = st.sampled_from(FAMILIES).flatmap(lambda p: st.sampled_from([s for s in LAYOUTS if s.protocol is p]))


# Bytes with a meaning somewhere: all-FF (unsupported), BCD limits, the +33H offset, start and end.
_SPECIAL_BYTES = [0x00, 0xFF, 0x80, 0x7F, 0x99, 0x9A, 0x33, 0x68, 0x16]


@st.composite
def mutated_data(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after 1-4 edits: bit flips, overwrites, cuts, insertions and long repeats."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "repeat", "truncate"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[at] = draw(st.sampled_from(_SPECIAL_BYTES) | st.integers(0, 255))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "repeat" and out:
            piece = bytes(out[at : at + draw(st.integers(1, 8))])
            out[at:at] = piece * draw(st.integers(2, 200))
        elif kind == "truncate":
            del out[at:]
    return bytes(out)


@st.composite
def mutated_frames(draw: st.DrawFn, layout: Layout) -> bytes:
    """A seed rebuilt around mutated data; mostly with length and checksum fixed up, sometimes lying."""
    data = draw(mutated_data(layout.data))
    length = draw(st.none() | st.none() | st.integers(0, 0xFFFF))
    frame = layout.rebuild(data, length=length, checksum=draw(st.integers(0, 9)) > 0)
    outer = draw(st.sampled_from(["none", "none", "preamble", "cut", "tail"]))
    if outer == "preamble":
        frame = b"\xfe" * draw(st.integers(1, 600)) + frame
    elif outer == "cut":
        frame = frame[: draw(st.integers(0, len(frame)))]
    elif outer == "tail":
        frame += draw(st.binary(min_size=1, max_size=8))
    return frame


# ---- the property -------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("AMIFLOW_FUZZ_EXAMPLES", "400"))
# A frame is at most a few hundred bytes: a decoder still busy after 2 s on one is hung, not slow.
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES = load_all()
ZONE = ZoneInfo("Asia/Shanghai")
profiles = st.sampled_from([None, *PROFILES.values()])
MODBUS_REQUESTS = [modbus_read_registers(1, f, a, n) for f, a, n in ((4, 0, 2), (4, 70, 6), (3, 0, 5))] + [
    modbus_read_registers(1, 3, 0, 5, tcp=True)]
requests = st.none() | st.sampled_from(MODBUS_REQUESTS) | st.binary(max_size=12)


def _outcome(text: str) -> None:
    if currently_in_test_context():  # tallied in --hypothesis-show-statistics
        event(text)


def decodes_or_refuses(raw: bytes, profile: object = None, request: bytes | None = None) -> str:
    """Decode as the gateway does (frame, then registers, status and clock); only FrameError may stop it."""
    try:
        frame = decode_frame(raw, profile, request=request)  # type: ignore[arg-type]
    except FrameError as exc:
        assert exc.__cause__ is None, f"the decoder leaked {exc.__cause__!r}"
        assert isinstance(exc.reason, RejectionReason) and str(exc)
        _outcome(f"refused: {exc.reason.value}")
        return "refused"
    assert frame.protocol is not FrameProtocol.UNKNOWN
    json.dumps(frame.to_json())  # the codec CLI and the logs print it
    try:
        registers = register_values(frame)
        device_status(frame, ZONE, profile)  # type: ignore[arg-type]
    except FrameError as exc:
        assert isinstance(exc.reason, RejectionReason)
        _outcome("decoded, registers refused")
        return "refused"
    meter_time(frame, ZONE)
    names = [r.register for r in registers]
    assert len(names) == len(set(names)), f"one frame names a register twice: {names}"
    _outcome(f"decoded: {frame.protocol.value}")
    return "decoded"


def test_every_seed_decodes_so_mutations_start_from_real_frames() -> None:
    kinds = {layout.protocol for layout in LAYOUTS}
    assert {FrameProtocol.CJT188, FrameProtocol.DLT645_2007, FrameProtocol.MBUS, FrameProtocol.MODBUS_RTU,
            FrameProtocol.MODBUS_TCP} <= kinds
    assert all(decodes_or_refuses(seed) == "decoded" for seed in SEEDS)


def profiles_for(protocol: FrameProtocol) -> st.SearchStrategy[object]:
    """Mostly None or a profile of the frame's own protocol (else the probes refuse it at once), sometimes any."""
    own = [p for p in PROFILES.values() if p.protocol is protocol]
    matching = st.sampled_from([None, *own])
    return st.one_of(matching, matching, profiles)


@st.composite
def mutated_with_profile(draw: st.DrawFn) -> tuple[bytes, object]:
    layout = draw(layouts)
    return draw(mutated_frames(layout)), draw(profiles_for(layout.protocol))


@FUZZ
@given(mutated_with_profile(), requests)
def test_mutated_frames_decode_or_raise_only_frame_error(case: tuple[bytes, object], request: bytes | None) -> None:
    raw, profile = case
    decodes_or_refuses(raw, profile, request)


@FUZZ
@given(st.binary(max_size=400), profiles, requests)
def test_random_bytes_with_any_profile_and_request_raise_only_frame_error(
    raw: bytes, profile: object, request: bytes | None
) -> None:
    decodes_or_refuses(raw, profile, request)


_words = st.lists(st.integers(0, 0xFFFF), max_size=130).map(lambda ws: b"".join(w.to_bytes(2, "big") for w in ws))
# PDUs shaped like the application protocol's (a byte count that may lie, a register span, an exception
# code), and shapeless ones.
_pdus = st.one_of(
    st.builds(lambda f, n, words: bytes([f, n]) + words, st.sampled_from([3, 4]), st.integers(0, 255), _words),
    st.builds(lambda f, a, n: bytes([f]) + a.to_bytes(2, "big") + n.to_bytes(2, "big"), st.sampled_from([1, 2, 3, 4]),
              st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    st.builds(lambda f, code: bytes([f | 0x80, code]), st.integers(1, 0x7F), st.integers(0, 255)),
    st.builds(lambda f, rest: bytes([f]) + rest, st.sampled_from([1, 2, 5, 6, 15, 16, 23, 43]) | st.integers(0, 255),
              st.binary(max_size=260)),
)


@FUZZ
@given(st.integers(0, 255), _pdus, st.booleans(), st.sampled_from([None, *(p for p in PROFILES.values() if p.modbus)]),
       requests)
def test_well_framed_modbus_content_raises_only_frame_error(
    unit: int, pdu: bytes, tcp: bool, profile: object, request: bytes | None
) -> None:
    body = bytes([unit]) + pdu[:253]
    raw = bytes.fromhex("00010000") + len(body).to_bytes(2, "big") + body if tcp else body + crc16(body)
    decodes_or_refuses(raw, profile, request)


# EN 13757-3 data records: DIF (bit 7: a DIFE follows), VIF (bit 7: a VIFE follows), data. Long
# extension chains and odd data field codes are where a record parser counts wrong.
_dif = st.sampled_from([0x04, 0x0C, 0x0D, 0x0F, 0x1F, 0x84, 0x8C, 0x8D, 0x44, 0x02]) | st.integers(0, 255)
_vif = st.sampled_from([0x13, 0x06, 0x3B, 0x5B, 0x6D, 0x78, 0x7C, 0xFC, 0xFD, 0xFB, 0xFF, 0x93]) | st.integers(0, 255)


def _extended(draw: st.DrawFn, first: int) -> bytes:
    """A DIF or VIF and its chain of extension bytes: bit 7 set on every byte but the last."""
    chain = [first & 0x7F, *(draw(st.integers(0, 0x7F)) for _ in range(draw(st.integers(0, 12))))]
    return bytes(b | 0x80 for b in chain[:-1]) + bytes(chain[-1:])


@st.composite
def _mbus_records(draw: st.DrawFn) -> bytes:
    records = b""
    for _ in range(draw(st.integers(0, 6))):
        records += _extended(draw, draw(_dif)) + _extended(draw, draw(_vif)) + draw(st.binary(max_size=12))
    return records


@FUZZ
@given(st.sampled_from([0x08, 0x18, 0x28, 0x38, 0x53, 0x73]), st.integers(0, 255),
       st.sampled_from([0x72, 0x76, 0x78, 0x7A, 0x70, 0x71, 0x51]), st.binary(min_size=0, max_size=12), _mbus_records(),
       profiles_for(FrameProtocol.MBUS))
def test_mbus_records_with_long_extension_chains_raise_only_frame_error(
    control: int, primary: int, ci: int, header: bytes, records: bytes, profile: object
) -> None:
    body = (bytes([control, primary, ci]) + header + records)[:255]
    decodes_or_refuses(bytes([0x68, len(body), len(body), 0x68]) + body + bytes([sum8(body), 0x16]), profile)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[Framing, list[bytes]]:
    framing = draw(st.sampled_from(list(Framing)))
    wanted = {Framing.START_68: (FrameProtocol.CJT188, FrameProtocol.DLT645_2007, FrameProtocol.MBUS),
              Framing.MODBUS_RTU: (FrameProtocol.MODBUS_RTU,), Framing.MODBUS_TCP: (FrameProtocol.MODBUS_TCP,)}
    layouts = [layout for layout in LAYOUTS if layout.protocol in wanted[framing]]
    stream = b""
    for _ in range(draw(st.integers(1, 6))):
        layout = draw(st.sampled_from(layouts))
        frame = layout.rebuild(layout.data) if draw(st.booleans()) else layout.rebuild(draw(mutated_data(layout.data)))
        stream += b"\xfe" * draw(st.sampled_from([0, 0, 2, 5000])) + draw(st.binary(max_size=6)) + frame
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return framing, [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


@FUZZ
@given(_streams())
def test_a_stream_of_mutated_frames_splits_into_frames_that_decode_or_are_refused(
    stream: tuple[Framing, list[bytes]],
) -> None:
    framing, reads = stream
    splitter = StreamSplitter(framing)
    items: list[WireFrame | RejectedBytes] = []
    for read in reads:
        items += splitter.feed(read)
        assert splitter.buffered <= 268
    items += splitter.flush()
    assert splitter.buffered == 0
    for item in items:
        if isinstance(item, WireFrame):
            decodes_or_refuses(item.raw)
        else:
            assert item.raw and isinstance(item.reason, RejectionReason)
