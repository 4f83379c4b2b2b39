"""The record file of a backed-up partition: framing round trip, and damage detected rather than misread."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from amiflow_runtime.backup_frames import (
    DamagedRecordFile,
    RecordFileWriter,
    TopicRecord,
    encode_file_header,
    encode_record,
    iter_records,
    read_record_file,
)
from hypothesis import given
from hypothesis import strategies as st

TOPIC = "amiflow.dlq.vee"

RECORDS = [
    TopicRecord(offset=3, timestamp_ms=1_767_225_600_000, key=b"meter-1", value=b"\x68\x10\xaa\xff\xfe not utf-8",
                headers=(("event_type", b"ReadingReceived"), ("dlq.raw", b"\x00\x80\xff"), ("empty", b""))),
    TopicRecord(offset=4, timestamp_ms=1_767_225_600_001, key=b"device/7", value=None, headers=()),  # tombstone
    TopicRecord(offset=9, timestamp_ms=-1, key=None, value=b"", headers=(("trace", None), ("zähler", b"1"))),
]


def _write(path: Path, records: list[TopicRecord], partition: int = 2) -> None:
    with RecordFileWriter(path, TOPIC, partition) as writer:
        for record in records:
            writer.write(record)


def test_records_come_back_byte_for_byte_with_null_and_empty_values_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "p.records.gz"
    _write(path, RECORDS)
    assert list(read_record_file(path, TOPIC, 2)) == RECORDS


def test_a_partition_without_records_is_a_valid_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.records.gz"
    _write(path, [])
    assert list(read_record_file(path, TOPIC, 2)) == []


def test_a_file_cut_short_is_refused_not_read_as_fewer_records(tmp_path: Path) -> None:
    whole = encode_file_header(TOPIC, 0) + b"".join(encode_record(r) for r in RECORDS)  # no trailer
    for cut in (len(whole), len(whole) - 5):
        with pytest.raises(DamagedRecordFile, match="truncated"):
            list(iter_records(io.BytesIO(whole[:cut]), TOPIC, 0))


def test_a_writer_interrupted_by_an_error_leaves_no_trailer(tmp_path: Path) -> None:
    path = tmp_path / "broken.records.gz"
    with pytest.raises(RuntimeError), RecordFileWriter(path, TOPIC, 0) as writer:
        writer.write(RECORDS[0])
        raise RuntimeError("broker went away")
    with pytest.raises(DamagedRecordFile):
        list(read_record_file(path, TOPIC, 0))


def test_a_trailer_that_disagrees_with_the_records_is_refused() -> None:
    body = encode_file_header(TOPIC, 0) + encode_record(RECORDS[0]) + b"E" + (5).to_bytes(8, "big")
    with pytest.raises(DamagedRecordFile, match="trailer says 5"):
        list(iter_records(io.BytesIO(body), TOPIC, 0))


def test_a_file_of_another_partition_or_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.records.gz"
    _write(path, RECORDS, partition=1)
    with pytest.raises(DamagedRecordFile, match=r"expected amiflow\.dlq\.vee\[2\]"):
        list(read_record_file(path, TOPIC, 2))
    path.write_bytes(gzip.compress(b"{\"json\": true}"))
    with pytest.raises(DamagedRecordFile, match="magic"):
        list(read_record_file(path, TOPIC, 1))
    path.write_bytes(b"not even gzip")
    with pytest.raises(DamagedRecordFile):
        list(read_record_file(path, TOPIC, 1))


def test_records_out_of_offset_order_are_refused_at_write(tmp_path: Path) -> None:
    writer = RecordFileWriter(tmp_path / "p.records.gz", TOPIC, 0)
    writer.write(RECORDS[1])
    with pytest.raises(ValueError, match="offset order"):
        writer.write(RECORDS[0])
    writer.close()


_bytes = st.one_of(st.none(), st.binary(max_size=64))
_record = st.builds(TopicRecord, offset=st.just(0), timestamp_ms=st.integers(-1, 2**62), key=_bytes, value=_bytes,
                    headers=st.lists(st.tuples(st.text(max_size=12), _bytes), max_size=4).map(tuple))


@given(st.lists(_record, max_size=20))
def test_any_records_round_trip_through_the_framing(records: list[TopicRecord]) -> None:
    numbered = [TopicRecord(i * 2, r.timestamp_ms, r.key, r.value, r.headers) for i, r in enumerate(records)]
    body = (encode_file_header(TOPIC, 7) + b"".join(encode_record(r) for r in numbered)
            + b"E" + len(numbered).to_bytes(8, "big"))
    assert list(iter_records(io.BytesIO(body), TOPIC, 7)) == numbered
