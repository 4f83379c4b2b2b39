"""The backup manifest: checksums that catch any change, no passwords, and consumer offsets translated."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from amiflow_runtime.backup_manifest import (
    MANIFEST,
    MANIFEST_CHECKSUM,
    DamagedBackup,
    DatabaseBackup,
    Manifest,
    PartitionBackup,
    PositionMap,
    TopicBackup,
    checksum_files,
    describe_database_url,
    read_manifest,
    verify_set,
    write_manifest,
)
from hypothesis import given
from hypothesis import strategies as st

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def _set(folder: Path) -> Manifest:
    (folder / "databases").mkdir(parents=True)
    (folder / "databases" / "billing.pgdump").write_bytes(b"PGDMP\x00\x01 archive")
    (folder / "topics" / "t").mkdir(parents=True)
    (folder / "topics" / "t" / "partition-0000.records.gz").write_bytes(b"\x1f\x8b records")
    files = ["databases/billing.pgdump", "topics/t/partition-0000.records.gz"]
    manifest = Manifest(
        amiflow_version="0.1.0", started_at=AT, finished_at=AT, order=("databases", "topics"),
        databases=(DatabaseBackup(service="billing", engine="postgresql", file=files[0], location="db:5432/billing",
                                  server_version="15.10", dump_tool_major=15, table_rows={"public.inbox": 3},
                                  started_at=AT, finished_at=AT),),
        topics=(TopicBackup(name="t", cleanup_policy="delete", retention_ms=-1, partitions=(
            PartitionBackup(partition=0, start_offset=0, end_offset=1, records=1, file=files[1]),)),),
        files=checksum_files(folder, files),
    )
    write_manifest(folder, manifest)
    return manifest


def test_a_written_set_reads_back_and_verifies(tmp_path: Path) -> None:
    written = _set(tmp_path)
    assert verify_set(tmp_path) == written
    assert (tmp_path / MANIFEST_CHECKSUM).read_text().endswith(f"  {MANIFEST}\n")  # sha256sum -c format
    assert not list(tmp_path.glob("*.partial"))


def test_one_changed_byte_in_a_file_is_refused_with_the_file_named(tmp_path: Path) -> None:
    _set(tmp_path)
    archive = tmp_path / "databases" / "billing.pgdump"
    data = bytearray(archive.read_bytes())
    data[-1] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(DamagedBackup, match=r"databases/billing.pgdump: sha256 does not match"):
        verify_set(tmp_path)


def test_missing_and_resized_files_are_all_listed(tmp_path: Path) -> None:
    _set(tmp_path)
    (tmp_path / "databases" / "billing.pgdump").unlink()
    (tmp_path / "topics" / "t" / "partition-0000.records.gz").write_bytes(b"short")
    with pytest.raises(DamagedBackup) as refused:
        verify_set(tmp_path)
    assert "databases/billing.pgdump: missing" in str(refused.value)
    assert "partition-0000.records.gz: 5 bytes" in str(refused.value)


def test_an_edited_manifest_is_refused_before_its_contents_are_believed(tmp_path: Path) -> None:
    _set(tmp_path)
    text = (tmp_path / MANIFEST).read_text().replace('"records": 1', '"records": 2')
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(DamagedBackup, match=r"does not match manifest\.json\.sha256"):
        read_manifest(tmp_path)


def test_a_folder_without_a_manifest_is_not_a_backup_set(tmp_path: Path) -> None:
    (tmp_path / "databases").mkdir()
    with pytest.raises(DamagedBackup, match=r"no manifest\.json"):
        verify_set(tmp_path)


def test_a_newer_format_is_refused_with_both_versions(tmp_path: Path) -> None:
    _set(tmp_path)
    raw = json.loads((tmp_path / MANIFEST).read_text())
    raw["format_version"] = 2
    text = json.dumps(raw)
    (tmp_path / MANIFEST).write_text(text)
    (tmp_path / MANIFEST_CHECKSUM).write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  {MANIFEST}\n")
    with pytest.raises(DamagedBackup, match="backup format 2; this amiflow reads 1"):
        read_manifest(tmp_path)


def test_a_file_the_manifest_names_without_a_checksum_is_refused(tmp_path: Path) -> None:
    manifest = _set(tmp_path)
    stripped = manifest.model_copy(update={"files": {k: v for k, v in manifest.files.items() if "topics" not in k}})
    write_manifest(tmp_path, stripped)
    with pytest.raises(DamagedBackup, match="named in the manifest but has no checksum"):
        verify_set(tmp_path)


def test_database_locations_never_carry_the_password() -> None:
    url = "postgresql+asyncpg://billing:s3cr3t@db.internal:6432/billing?ssl=require"
    assert describe_database_url(url) == "db.internal:6432/billing"
    assert describe_database_url("sqlite+aiosqlite:////var/lib/amiflow/vee.db") == "/var/lib/amiflow/vee.db"


def test_committed_offsets_move_past_the_gaps_of_the_old_log() -> None:
    # Old partition: retention removed 0-9, compaction removed 12 and 14; a restore writes 10, 11, 13, 15.
    positions = PositionMap([5, 10, 12, 13, 16])
    for offset in (10, 11, 13, 15):
        positions.observe(offset)
    assert positions.position(5) == 0  # behind the earliest retained record: start from the first
    assert positions.position(10) == 0
    assert positions.position(12) == 2  # the next record to read was 13, now at 2
    assert positions.position(13) == 2
    assert positions.position(16) == 4  # caught up: the end of the restored partition
    assert positions.position(12, base=100) == 102
    with pytest.raises(KeyError):
        positions.position(11)


@given(st.sets(st.integers(0, 200)), st.sets(st.integers(0, 220), min_size=1))
def test_translation_counts_the_records_before_each_committed_offset(offsets: set[int], committed: set[int]) -> None:
    positions = PositionMap(committed)
    for offset in sorted(offsets):
        positions.observe(offset)
    for c in committed:
        assert positions.position(c) == sum(1 for o in offsets if o < c)
