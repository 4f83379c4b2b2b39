"""The record file of one backed-up topic partition: Kafka records framed in binary, gzip-compressed.

Binary rather than JSON lines because keys, values and header values are arbitrary bytes (a dead
letter keeps the raw frame a meter sent) and a null value (a compacted topic's tombstone) must stay
distinct from an empty one. Layout, all integers big-endian, inside one gzip stream:

    file header   MAGIC (16 bytes) | u16 format version | u16 topic length | topic (UTF-8) | u32 partition
    record        b"R" | i64 offset | i64 timestamp ms (-1: none) | key | value | u16 header count
                  | per header: u16 name length | name (UTF-8) | header value
    trailer       b"E" | u64 record count
    key, value and header value: i32 length (-1 means null) | bytes

The trailer makes a truncated file an error even without its checksum; the manifest's sha256 is
checked first anyway (backup_manifest.verify_files).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

MAGIC = b"AMIFLOW-RECORDS\x00"
FORMAT_VERSION = 1
GZIP_LEVEL = 6  # Python's default of 9 costs several times the CPU for a few per cent of size

_RECORD, _END = b"R", b"E"
_U16, _I32, _U32, _I64, _U64 = (struct.Struct(f">{c}") for c in "HiIqQ")
_RECORD_HEAD = struct.Struct(">qq")


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class DamagedRecordFile(ValueError):
    """A record file that does not parse: wrong magic, truncated, or a count that does not add up."""


@dataclass(frozen=True)
class TopicRecord:
    """One Kafka record as backed up: what a restore must produce again, byte for byte."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def _blob(value: bytes | None) -> bytes:
    return _I32.pack(-1) if value is None else _I32.pack(len(value)) + value


def encode_record(record: TopicRecord) -> bytes:
    """The frame of one record."""
    parts = [_RECORD, _RECORD_HEAD.pack(record.offset, record.timestamp_ms), _blob(record.key),
             _blob(record.value), _U16.pack(len(record.headers))]
    for name, value in record.headers:
        encoded = name.encode()
        parts += [_U16.pack(len(encoded)), encoded, _blob(value)]
    return b"".join(parts)


def encode_file_header(topic: str, partition: int) -> bytes:
    """The start of a record file: magic, format version, topic and partition."""
    name = topic.encode()
    return MAGIC + _U16.pack(FORMAT_VERSION) + _U16.pack(len(name)) + name + _U32.pack(partition)


class RecordFileWriter:
    """Writes one partition's records in offset order; `close` adds the trailer with the count."""

    def __init__(self, path: Path, topic: str, partition: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.count = 0
        self._last_offset = -1
        self._out = gzip.GzipFile(path, "wb", compresslevel=GZIP_LEVEL)
        self._out.write(encode_file_header(topic, partition))

    def write(self, record: TopicRecord) -> None:
        """Append a record; offsets must increase, as they do in a partition."""
        if record.offset <= self._last_offset:
            raise ValueError(f"offset {record.offset} after {self._last_offset}: records must come in offset order")
        self._out.write(encode_record(record))
        self._last_offset = record.offset
        self.count += 1

    def close(self) -> None:
        """Write the trailer and close the file."""
        if self._out.closed:
            return
        self._out.write(_END + _U64.pack(self.count))
        self._out.close()

    def abandon(self) -> None:
        """Close without the trailer: a half-written file must never pass for a complete one."""
        self._out.close()

    def __enter__(self) -> RecordFileWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()


def _exactly(stream: _Readable, size: int) -> bytes:
    chunk = stream.read(size)
    if len(chunk) != size:
        raise DamagedRecordFile("the record file ends in the middle of a record (truncated?)")
    return chunk


def _read_blob(stream: _Readable) -> bytes | None:
    (size,) = _I32.unpack(_exactly(stream, 4))
    if size < -1:
        raise DamagedRecordFile(f"negative length {size}")
    return None if size == -1 else _exactly(stream, size)


def _read_header(stream: _Readable) -> tuple[str, int]:
    if stream.read(len(MAGIC)) != MAGIC:
        raise DamagedRecordFile("not an amiflow record file (wrong magic)")
    (version,) = _U16.unpack(_exactly(stream, 2))
    if version != FORMAT_VERSION:
        raise DamagedRecordFile(f"record file format {version} is not supported (this amiflow reads {FORMAT_VERSION})")
    (size,) = _U16.unpack(_exactly(stream, 2))
    topic = _exactly(stream, size).decode()
    (partition,) = _U32.unpack(_exactly(stream, 4))
    return topic, partition


def _read_record(stream: _Readable) -> TopicRecord:
    offset, timestamp_ms = _RECORD_HEAD.unpack(_exactly(stream, _RECORD_HEAD.size))
    key, value = _read_blob(stream), _read_blob(stream)
    (count,) = _U16.unpack(_exactly(stream, 2))
    headers = []
    for _ in range(count):
        (size,) = _U16.unpack(_exactly(stream, 2))
        headers.append((_exactly(stream, size).decode(), _read_blob(stream)))
    return TopicRecord(offset, timestamp_ms, key, value, tuple(headers))


def iter_records(stream: _Readable, topic: str, partition: int) -> Iterator[TopicRecord]:
    """The records of an uncompressed record stream, checked against the expected topic and partition."""
    found = _read_header(stream)
    if found != (topic, partition):
        raise DamagedRecordFile(f"the file holds {found[0]}[{found[1]}], expected {topic}[{partition}]")
    count = 0
    while True:
        tag = _exactly(stream, 1)
        if tag == _END:
            (expected,) = _U64.unpack(_exactly(stream, 8))
            if expected != count or stream.read(1):
                raise DamagedRecordFile(f"the trailer says {expected} records, the file holds {count}")
            return
        if tag != _RECORD:
            raise DamagedRecordFile(f"unexpected frame tag {tag!r}")
        count += 1
        yield _read_record(stream)


def read_record_file(path: Path, topic: str, partition: int) -> Iterator[TopicRecord]:
    """The records of a file written by RecordFileWriter, in offset order."""
    try:
        with gzip.GzipFile(path, "rb") as stream:
            yield from iter_records(stream, topic, partition)
    except (OSError, EOFError) as exc:  # gzip's own CRC and length checks
        raise DamagedRecordFile(f"{path.name}: {exc}") from exc
