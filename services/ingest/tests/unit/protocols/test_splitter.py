"""The stream splitter: FE runs, garbage, split reads, several frames per read, echoes, bad checksums."""

from __future__ import annotations

from amiflow_schemas.events.devices import FrameProtocol, RejectionReason
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest.core.protocols import Framing, RejectedBytes, StreamSplitter, WireFrame, decode_frame
from ingest.core.protocols.cjt188_encode import cjt188_frame
from ingest.core.protocols.dlt645_encode import dlt645_frame
from ingest.core.protocols.modbus import read_registers_request

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

READ_188 = bytes.fromhex("6810AAAAAAAAAAAAAA0103901F9061 16".replace(" ", ""))
REPLY_188 = bytes.fromhex(
    "68108805271015200081 16901F01 000000002C 000000002C 06201709011720 0000 8E16".replace(" ", ""))
READ_645 = bytes.fromhex("68129078563412681104333334336816")
REPLY_645 = bytes.fromhex("6812907856341268910833333433896745335416")
MBUS = bytes.fromhex("681F1F680802727856341224400107550000000313153100DA023B13018B60043718021816")


def _frames(items: list[WireFrame | RejectedBytes]) -> list[bytes]:
    return [i.raw for i in items if isinstance(i, WireFrame)]


def _rejects(items: list[WireFrame | RejectedBytes]) -> list[RejectedBytes]:
    return [i for i in items if isinstance(i, RejectedBytes)]


def _feed_all(splitter: StreamSplitter, chunks: list[bytes]) -> list[WireFrame | RejectedBytes]:
    out: list[WireFrame | RejectedBytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    return out


def test_request_echo_and_reply_in_one_read_come_out_in_order_with_their_direction() -> None:
    items = StreamSplitter().feed(b"\xfe\xfe\xfe\xfe" + READ_645 + b"\xfe\xfe" + REPLY_645)
    assert [(i.raw, i.is_request, i.preamble_fe) for i in items if isinstance(i, WireFrame)] == [
        (READ_645, True, 4), (REPLY_645, False, 2)]


def test_cjt188_dlt645_and_mbus_frames_mixed_on_one_stream_are_told_apart() -> None:
    items = StreamSplitter().feed(READ_188 + REPLY_645 + MBUS + REPLY_188)
    assert [i.protocol for i in items if isinstance(i, WireFrame)] == [
        FrameProtocol.CJT188, FrameProtocol.DLT645_2007, FrameProtocol.MBUS, FrameProtocol.CJT188]


def test_a_frame_split_over_many_reads_is_held_until_complete() -> None:
    splitter = StreamSplitter()
    out = _feed_all(splitter, [REPLY_188[i : i + 3] for i in range(0, len(REPLY_188), 3)])
    assert _frames(out) == [REPLY_188] and splitter.buffered == 0


def test_a_bad_checksum_is_reported_and_the_next_frame_still_found() -> None:
    broken = bytearray(REPLY_645)
    broken[-2] ^= 0x01
    items = StreamSplitter().feed(bytes(broken) + REPLY_645)
    (reject,) = _rejects(items)
    assert reject.reason is RejectionReason.CHECKSUM_MISMATCH and reject.protocol is FrameProtocol.DLT645_2007
    assert reject.raw == bytes(broken) and _frames(items) == [REPLY_645]


def test_a_cut_off_frame_running_into_a_good_one_is_reported_and_the_good_one_kept() -> None:
    items = StreamSplitter().feed(REPLY_645[:12] + REPLY_645)
    (reject,) = _rejects(items)
    assert reject.reason is RejectionReason.BAD_END_BYTE and reject.raw.startswith(REPLY_645[:12])
    assert _frames(items) == [REPLY_645]


def test_bad_end_byte_is_its_own_reason_once_the_next_frame_shows_it_was_no_longer_frame() -> None:
    splitter = StreamSplitter()
    # 68 12 .. could still open a 64-byte CJ/T 188 frame (T=12), so the splitter waits ...
    assert splitter.feed(REPLY_645[:-1] + b"\x17") == []
    items = splitter.feed(READ_645)  # ... until a whole frame behind it settles the question.
    assert [r.reason for r in _rejects(items)] == [RejectionReason.BAD_END_BYTE] and _frames(items) == [READ_645]


def test_at_the_end_of_the_connection_a_broken_held_frame_is_reported_with_its_fault() -> None:
    splitter = StreamSplitter()
    splitter.feed(REPLY_645[:-1] + b"\x17")
    (reject,) = splitter.flush()
    assert isinstance(reject, RejectedBytes) and reject.reason is RejectionReason.BAD_END_BYTE


def test_garbage_is_reported_as_a_reject_with_its_bytes_not_dropped() -> None:
    items = StreamSplitter().feed(b"www.usr.cn" + READ_645)
    assert [(r.raw, r.reason) for r in _rejects(items)] == [(b"www.usr.cn", RejectionReason.UNKNOWN_PROTOCOL)]
    assert _frames(items) == [READ_645]


def test_a_false_68_start_is_skipped_once_a_real_frame_completes_behind_it() -> None:
    items = StreamSplitter().feed(b"\x68\x10\x01" + READ_188)  # 68 10 .. looks like a CJ/T 188 header
    assert _frames(items) == [READ_188]
    assert b"".join(r.raw for r in _rejects(items)) == b"\x68\x10\x01"


def test_the_buffer_never_grows_past_the_largest_frame() -> None:
    splitter = StreamSplitter(max_frame_bytes=64)
    splitter.feed(b"\x68\x10" + b"\x00" * 8 + b"\xf0")  # claims a 253-byte CJ/T 188 frame
    assert splitter.buffered <= 64
    out = splitter.feed(b"\x00" * 300)
    assert splitter.buffered <= 64 and _rejects(out)


def test_flush_reports_a_frame_cut_off_by_the_end_of_the_connection() -> None:
    splitter = StreamSplitter()
    splitter.feed(REPLY_188[:20])
    (reject,) = splitter.flush()
    assert isinstance(reject, RejectedBytes) and reject.reason is RejectionReason.TRUNCATED and splitter.buffered == 0


def test_modbus_tcp_replies_back_to_back_and_split_are_found() -> None:
    request = read_registers_request(1, 3, 0, 2, tcp=True, transaction_id=9)
    pdu = bytes([3, 4, 0, 1, 0, 2])
    reply = (9).to_bytes(2, "big") + b"\0\0" + (len(pdu) + 1).to_bytes(2, "big") + b"\x01" + pdu
    splitter = StreamSplitter(Framing.MODBUS_TCP)
    out = _feed_all(splitter, [request + reply[:5], reply[5:] + request])
    assert _frames(out) == [request, reply, request] and [i.is_request for i in out if isinstance(i, WireFrame)] == [
        True, False, True]


def test_modbus_rtu_echo_and_reply_are_split_in_declared_rtu_mode() -> None:
    request = read_registers_request(0x11, 3, 0x6B, 3)
    body = bytes.fromhex("110306AE415652434049AD")
    items = StreamSplitter(Framing.MODBUS_RTU).feed(b"\x00" + request + body)
    assert _frames(items) == [request, body]
    assert decode_frame(body).direction.value == "reply"


# ---- properties ---------------------------------------------------------------------------------

_addresses = st.binary(min_size=7, max_size=7)
_cjt188 = st.builds(lambda t, a, c, d: cjt188_frame(t, a, c, d), st.sampled_from([0x10, 0x20, 0x30, 0xAA]),
                    _addresses, st.sampled_from([0x01, 0x81, 0x84, 0xC1]), st.binary(min_size=3, max_size=60))
_dlt645 = st.builds(lambda a, c, d: dlt645_frame(a, c, d), st.binary(min_size=6, max_size=6),
                    st.sampled_from([0x11, 0x91, 0xD1, 0x1C, 0x08]), st.binary(max_size=40))
_frames_strategy = st.lists(st.one_of(_cjt188, _dlt645), min_size=1, max_size=5)


@st.composite
def _stream(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    frames = draw(_frames_strategy)
    parts = []
    for frame in frames:
        parts.append(draw(st.binary(max_size=12)))  # garbage, which may hold 68, 16 and FE bytes
        parts.append(b"\xfe" * draw(st.integers(0, 20)))
        parts.append(frame)
    return frames, b"".join(parts)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@BOUNDED
@given(_stream(), st.lists(st.integers(min_value=0), max_size=8))
def test_every_frame_is_recovered_whatever_garbage_fe_runs_and_read_boundaries(
    stream: tuple[list[bytes], bytes], cuts: list[int]
) -> None:
    frames, data = stream
    found = _frames(_feed_all(StreamSplitter(), _chunks(data, cuts)))
    remaining = iter(found)
    assert all(any(f == g for g in remaining) for f in frames), "frames missing or out of order"


@BOUNDED
@given(st.lists(st.binary(max_size=64), max_size=10), st.sampled_from(list(Framing)))
def test_arbitrary_bytes_never_crash_the_splitter_and_never_overfill_it(reads: list[bytes], framing: Framing) -> None:
    splitter = StreamSplitter(framing)
    for read in reads:
        for item in splitter.feed(read):
            assert isinstance(item, WireFrame | RejectedBytes)
        assert splitter.buffered <= 268
    splitter.flush()
    assert splitter.buffered == 0


@BOUNDED
@given(st.binary(min_size=1, max_size=200).filter(lambda b: 0x68 not in b and 0xFE not in b))
def test_bytes_that_cannot_start_a_frame_all_come_back_as_rejects(garbage: bytes) -> None:
    items = StreamSplitter().feed(garbage)
    assert b"".join(r.raw for r in _rejects(items)) == garbage and not _frames(items)
