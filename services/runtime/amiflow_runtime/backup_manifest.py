"""The manifest of a backup set: what it holds, where each piece came from, and every file's checksum.

A set is a folder: `manifest.json`, `manifest.json.sha256` (in `sha256sum` format, so
`sha256sum -c manifest.json.sha256` works there too), `databases/<service>.pgdump|.sqlite` and
`topics/<topic>/partition-NNNN.records.gz`. The manifest is written last: a folder without one is an
unfinished backup, and restore says so. Nothing here holds a password: a database is described by
host, port and name (`describe_database_url`), never by its URL.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import make_url

MANIFEST = "manifest.json"
MANIFEST_CHECKSUM = "manifest.json.sha256"
FORMAT_VERSION = 1
_CHUNK = 1024 * 1024


class DamagedBackup(RuntimeError):
    """A backup set that must not be restored: missing manifest, bad checksum, missing file."""


class BackupRefused(RuntimeError):
    """A backup or restore that would do harm: a non-empty target, a missing database, a bad option."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileChecksum(_Frozen):
    """Size and sha256 of one file of the set."""

    sha256: str
    size_bytes: int


class DatabaseBackup(_Frozen):
    """One service database: a pg_dump archive or a SQLite file, with its row counts."""

    service: str
    engine: Literal["postgresql", "sqlite"]
    file: str
    location: str  # host:port/database or the SQLite path; never a URL with its password
    server_version: str | None = None  # PostgreSQL only, e.g. "15.10"
    dump_tool_major: int | None = None  # the pg_dump that wrote the archive
    table_rows: dict[str, int]  # counted in the dump's own snapshot
    started_at: AwareDatetime
    finished_at: AwareDatetime


class PartitionBackup(_Frozen):
    """One topic partition's records from `start_offset` (earliest retained) to `end_offset` (high watermark)."""

    partition: int
    start_offset: int
    end_offset: int
    records: int  # fewer than end - start on a compacted topic
    file: str


class TopicBackup(_Frozen):
    """One topic: its settings, so a restore can create it on an empty cluster, and its partitions."""

    name: str
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int
    partitions: tuple[PartitionBackup, ...]


class CommittedOffset(_Frozen):
    """Where a consumer group was in one partition: the next offset it will read."""

    topic: str
    partition: int
    offset: int
    metadata: str = ""


class GroupOffsets(_Frozen):
    """A consumer group's committed offsets on the backed-up topics."""

    group: str
    offsets: tuple[CommittedOffset, ...]


class Manifest(_Frozen):
    """Everything a restore needs to know about a backup set."""

    format: Literal["amiflow-backup"] = "amiflow-backup"
    format_version: int = FORMAT_VERSION
    amiflow_version: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    order: tuple[str, ...]  # the steps as they were taken, for the reader of the manifest
    databases: tuple[DatabaseBackup, ...] = ()
    topics: tuple[TopicBackup, ...] = ()
    consumer_groups: tuple[GroupOffsets, ...] = ()
    files: dict[str, FileChecksum] = Field(default_factory=dict)

    def database(self, service: str) -> DatabaseBackup | None:
        """The backup of `service`'s database, if the set has one."""
        return next((d for d in self.databases if d.service == service), None)

    def topic(self, name: str) -> TopicBackup | None:
        """The backup of topic `name`, if the set has one."""
        return next((t for t in self.topics if t.name == name), None)


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_files(folder: Path, relative_paths: Iterable[str]) -> dict[str, FileChecksum]:
    """Checksums of the set's files, keyed by their path inside the folder."""
    return {rel: FileChecksum(sha256=sha256_of(folder / rel), size_bytes=(folder / rel).stat().st_size)
            for rel in sorted(relative_paths)}


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write manifest.json and its checksum file; the manifest goes in by rename, never half-written."""
    text = manifest.model_dump_json(indent=2) + "\n"
    partial = folder / (MANIFEST + ".partial")
    partial.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    (folder / MANIFEST_CHECKSUM).write_text(f"{digest}  {MANIFEST}\n", encoding="utf-8")
    partial.rename(folder / MANIFEST)
    return folder / MANIFEST


def _file_problems(folder: Path, rel: str, expected: FileChecksum) -> list[str]:
    path = folder / rel
    if not path.is_file():
        return [f"{rel}: missing"]
    size = path.stat().st_size
    if size != expected.size_bytes:
        return [f"{rel}: {size} bytes, the manifest says {expected.size_bytes}"]
    if sha256_of(path) != expected.sha256:
        return [f"{rel}: sha256 does not match the manifest (the file was changed or damaged)"]
    return []


def _referenced_files(manifest: Manifest) -> list[str]:
    return [d.file for d in manifest.databases] + [p.file for t in manifest.topics for p in t.partitions]


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the set in `folder`, its own checksum verified; DamagedBackup says why not."""
    path, sidecar = folder / MANIFEST, folder / MANIFEST_CHECKSUM
    if not path.is_file():
        raise DamagedBackup(f"{folder}: no {MANIFEST}; not a backup set, or its backup did not finish")
    raw = path.read_bytes()
    if not sidecar.is_file():
        raise DamagedBackup(f"{folder}: {MANIFEST_CHECKSUM} is missing; the manifest cannot be trusted")
    expected = sidecar.read_text(encoding="utf-8").split(maxsplit=1)[0] if sidecar.stat().st_size else ""
    if hashlib.sha256(raw).hexdigest() != expected:
        raise DamagedBackup(f"{folder}: {MANIFEST} does not match {MANIFEST_CHECKSUM} (changed or damaged)")
    try:
        format_version = json.loads(raw).get("format_version")
    except (ValueError, AttributeError) as exc:
        raise DamagedBackup(f"{folder}: {MANIFEST} is not a JSON object: {exc}") from exc
    if format_version != FORMAT_VERSION:
        raise DamagedBackup(f"{folder}: backup format {format_version!r}; this amiflow reads {FORMAT_VERSION}")
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise DamagedBackup(f"{folder}: {MANIFEST} is not a valid manifest: {exc}") from exc


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Check every file's size and sha256 against the manifest; DamagedBackup lists every problem."""
    problems = [f"{rel}: named in the manifest but has no checksum" for rel in _referenced_files(manifest)
                if rel not in manifest.files]
    for rel, expected in manifest.files.items():
        problems += _file_problems(folder, rel, expected)
    if problems:
        raise DamagedBackup(f"{folder}: refusing a damaged backup set:\n  " + "\n  ".join(problems))


def verify_set(folder: Path) -> Manifest:
    """The manifest of a set whose manifest and files all match their checksums."""
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    return manifest


def describe_database_url(url: str) -> str:
    """Where a database is, for logs and the manifest: host:port/name or the SQLite path, no credentials."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database or ":memory:")
    host = parsed.host or "localhost"
    return f"{host}:{parsed.port or 5432}/{parsed.database or ''}"


class PositionMap:
    """Translates a consumer group's committed offsets from the old log to the restored one.

    A restore writes the backed-up records contiguously from the target's end offset, so the
    record at old offset o lands at base + (records before o). Compaction, retention and
    transaction markers leave gaps in the old offsets; this closes them. `observe` takes the old
    offsets in order, as the restore produces them, so no list of offsets is ever held.
    """

    def __init__(self, committed: Iterable[int]) -> None:
        self._thresholds = sorted(set(committed))
        self._before = [0] * len(self._thresholds)
        self._seen = 0
        self._next = 0  # index of the first threshold above every offset seen so far

    def observe(self, offset: int) -> None:
        """One record of the partition, in offset order."""
        while self._next < len(self._thresholds) and self._thresholds[self._next] <= offset:
            self._before[self._next] = self._seen
            self._next += 1
        self._seen += 1

    def position(self, committed: int, base: int = 0) -> int:
        """The new offset for an old committed offset: base + how many observed records came before it."""
        index = bisect_left(self._thresholds, committed)
        if index == len(self._thresholds) or self._thresholds[index] != committed:
            raise KeyError(f"offset {committed} was not given to this map")
        before = self._before[index] if index < self._next else self._seen
        return base + before
