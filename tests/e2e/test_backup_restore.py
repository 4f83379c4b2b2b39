"""`amiflow backup` then `amiflow restore` into a second broker and fresh databases: every record and row back.

The source is the session's broker and PostgreSQL server; the target is a second broker started here.
Records go only to topics no service consumes (dead letters, rejected frames) or to topics of the
test's own, so a platform running on the same broker never sees them.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from amiflow_runtime import cli
from amiflow_runtime.backup import BackupPlan, RestorePlan, run_restore, take_backup
from amiflow_runtime.backup_databases import libpq_target
from amiflow_runtime.backup_manifest import MANIFEST, Manifest, verify_set
from amiflow_runtime.backup_topics import TopicSettings
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.db import upgrade
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.testing import create_database, started_kafka
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.e2e

SERVICES = ("vee", "billing", "commands")
# Written to by this test: no service consumes them. The compacted device registry is backed up as it is.
WRITTEN = ("amiflow.dlq.notify", "amiflow.dlq.commands", "amiflow.ingest.rejected-frames")
BACKED_UP = (*WRITTEN, "amiflow.registry.devices")
PASSWORD = "s3cret-backup-pw"  # the test server trusts every local connection; the password is only carried

Record = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]


@pytest.fixture(scope="module")
def target_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second, empty broker: the "new cluster" a backup is restored into, its topics created by the registry."""
    with started_kafka(tmp_path_factory.mktemp("restore-kafka")) as bootstrap:
        yield bootstrap


def _migrations(service: str) -> Path:
    return Path(str(importlib.import_module(service).__file__)).parent / "migrations"


def _with_password(url: str) -> str:
    return str(make_url(url).set(password=PASSWORD).render_as_string(hide_password=False))


async def _fill_database(service: str, url: str) -> None:
    target = libpq_target(url)
    conn = await asyncpg.connect(dsn=target.dsn, password=target.password)
    now = datetime.now(UTC)
    try:
        await conn.executemany("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3)",
                               [(f"{service}-consumer", str(uuid.uuid4()), now - timedelta(seconds=i))
                                for i in range(25)])
        await conn.executemany(
            "INSERT INTO outbox (topic, message_key, message_value, headers, created_at) VALUES ($1, $2, $3, $4, $5)",
            [(f"amiflow.{service}.x", f"key-{i}".encode(), b"\x00\xff\xfe binary " + bytes([i]), "[]", now)
             for i in range(7)])
    finally:
        await conn.close()


async def _table_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    target = libpq_target(url)
    conn = await asyncpg.connect(dsn=target.dsn, password=target.password)
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {t: sorted((tuple(r) for r in await conn.fetch(f"SELECT * FROM {t}")), key=repr) for t in tables}
    finally:
        await conn.close()


async def _produce(bootstrap: str, topic: str, partitions: int, tag: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    stamp = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    try:
        for partition in range(partitions):
            for i in range(4):
                key = None if i == 3 else f"{tag}-{partition}-{i}".encode()
                value = {0: b"\x68\x10\xaa\xff\xfe\x00" + tag.encode(), 1: b"", 2: None}.get(i, bytes(range(256)))
                headers = [("origin", b"backup-test"), ("raw", b"\xff\x00\xfe"), ("nothing", None)][: i + 1]
                await producer.send_and_wait(topic, value, key=key, partition=partition, headers=headers,
                                             timestamp_ms=stamp + i)
    finally:
        await producer.stop()


async def _read(bootstrap: str, tp: TopicPartition, start: int, end: int) -> list[Record]:
    """The records of one partition from `start` up to (not including) `end`."""
    if end <= start:
        return []  # (and aiokafka's stop right after start raises CancelledError)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[Record] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + 30
        while await consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"{tp} did not reach offset {end}"
            for m in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                if m.offset < end:
                    found.append((m.key, m.value, tuple(m.headers), m.timestamp))
    finally:
        await consumer.stop()
    return found


async def _end_offset(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {tp: om.offset for tp, om in (await admin.list_consumer_group_offsets(group)).items()}
    finally:
        await admin.close()


async def _assert_same_records(source: str, target: str, manifest: Manifest, names: tuple[str, ...]) -> int:
    compared = 0
    for name in names:
        topic = manifest.topic(name)
        assert topic is not None
        for part in topic.partitions:
            tp = TopicPartition(name, part.partition)
            backed_up = await _read(source, tp, part.start_offset, part.end_offset)
            restored = await _read(target, tp, 0, await _end_offset(target, tp))
            assert restored == backed_up, f"{tp} differs after the restore"
            assert len(restored) == part.records
            compared += len(restored)
    return compared


def _set_databases(monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]) -> None:
    for service, url in urls.items():
        monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", url)


def test_backup_restored_into_a_new_cluster_and_new_databases_gives_every_record_and_row_back(
        kafka_bootstrap: str, postgres_admin_url: str, target_kafka: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tag = uuid.uuid4().hex[:10]
    sources = {s: _with_password(asyncio.run(create_database(postgres_admin_url, f"src_{s}"))) for s in SERVICES}
    for service, url in sources.items():
        upgrade(_migrations(service), url)
        asyncio.run(_fill_database(service, url))
    for name in WRITTEN:
        asyncio.run(_produce(kafka_bootstrap, name, 3, tag))
    group = f"backup-test-{tag}"
    dlq = "amiflow.dlq.notify"
    ends = {p: asyncio.run(_end_offset(kafka_bootstrap, TopicPartition(dlq, p))) for p in range(3)}
    asyncio.run(_commit(kafka_bootstrap, group, {TopicPartition(dlq, p): ends[p] - 1 - p for p in range(3)}))

    folder = tmp_path / "set"
    _set_databases(monkeypatch, sources)
    assert cli.main(["backup", str(folder), "--services", ",".join(SERVICES), "--topics", ",".join(BACKED_UP),
                     "--bootstrap", kafka_bootstrap]) == 0
    manifest = verify_set(folder)
    assert [d.service for d in manifest.databases] == ["vee", "billing", "commands"]  # the CLI's service order
    assert manifest.order[0] == "consumer group offsets" and manifest.order[2] == "topic high watermarks"

    # Fresh databases: two created empty, one (commands) not there at all; the restore creates it.
    targets = {s: _with_password(asyncio.run(create_database(postgres_admin_url, f"dst_{s}"))) for s in SERVICES[:2]}
    targets["commands"] = str(make_url(targets["vee"]).set(database=f"dst_commands_{tag}")
                              .render_as_string(hide_password=False))
    _set_databases(monkeypatch, targets)
    assert cli.main(["restore", str(folder), "--bootstrap", target_kafka]) == 0
    printed = capsys.readouterr()

    for service in SERVICES:
        original = asyncio.run(_table_contents(sources[service]))
        assert asyncio.run(_table_contents(targets[service])) == original
        assert (len(original["inbox"]), len(original["outbox"])) == (25, 7)
    assert asyncio.run(_assert_same_records(kafka_bootstrap, target_kafka, manifest, BACKED_UP)) >= 3 * 3 * 4
    # The group's offsets moved over, pointing at the same records in the new logs.
    dlq_backup = manifest.topic(dlq)
    assert dlq_backup is not None
    committed = asyncio.run(_committed(target_kafka, group))
    for part in dlq_backup.partitions:
        old = ends[part.partition] - 1 - part.partition
        assert committed[TopicPartition(dlq, part.partition)] == old - part.start_offset
    assert "database commands -> " in printed.out and "(database created)" in printed.out
    assert f"topic {dlq}: " in printed.out
    assert PASSWORD not in printed.out + printed.err
    assert not [f for f in folder.rglob("*") if f.is_file() and PASSWORD.encode() in f.read_bytes()]

    # A second restore finds everything occupied and refuses, naming the reason.
    assert cli.main(["restore", str(folder), "--only", "databases", "--services", "vee"]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert cli.main(["restore", str(folder), "--only", "topics", "--bootstrap", target_kafka]) == 1
    assert "not empty" in capsys.readouterr().err

    # One changed byte in one record file: the set is refused before anything is touched.
    victim = folder / manifest.topics[0].partitions[0].file
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    assert cli.main(["restore", str(folder), "--verify-only"]) == 1
    refusal = capsys.readouterr().err
    assert manifest.topics[0].partitions[0].file in refusal and "sha256 does not match" in refusal


async def _make_topics(bootstrap: str, specs: list[TopicSettings]) -> None:
    await ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap), specs)


async def _gappy_history(bootstrap: str, compacted: str, trimmed: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(6):  # updates and a tombstone per device key, as the registry has
            await producer.send_and_wait(compacted, f"v{i}".encode(), key=f"device/{i % 2}".encode(), partition=0)
        await producer.send_and_wait(compacted, None, key=b"device/0", partition=0)
        for i in range(10):
            await producer.send_and_wait(trimmed, f"r{i}".encode(), key=b"k", partition=0)
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # retention took offsets 0-3 away: the backup starts at 4
        await admin.delete_records({TopicPartition(trimmed, 0): RecordsToDelete(4)}, timeout_ms=10_000)
    finally:
        await admin.close()


async def _keep_writing(bootstrap: str, topic: str, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        written = 0
        while not stop.is_set() or written < 3:
            await producer.send_and_wait(topic, b"later", key=f"late/{written}".encode(), partition=1)
            written += 1
            await asyncio.sleep(0.02)
        await producer.send_and_wait(topic, b"after the backup", key=b"late/last", partition=1)
    finally:
        await producer.stop()


async def test_compacted_and_trimmed_topics_round_trip_and_group_offsets_close_the_gap(
        kafka_bootstrap: str, target_kafka: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    specs = [TopicSettings(f"backup-test.compacted.{tag}", 2, "compact", -1),
             TopicSettings(f"backup-test.trimmed.{tag}", 1, "delete", -1)]
    await _make_topics(kafka_bootstrap, specs)
    await _gappy_history(kafka_bootstrap, specs[0].name, specs[1].name)
    group = f"backup-test-{tag}"
    await _commit(kafka_bootstrap, group, {TopicPartition(specs[1].name, 0): 7, TopicPartition(specs[0].name, 0): 7})
    source, target = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap), \
        ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=target_kafka)

    stop = asyncio.Event()
    writer = asyncio.create_task(_keep_writing(kafka_bootstrap, specs[0].name, stop))
    try:  # the platform keeps producing during a backup: what arrives after the watermark is left out
        manifest = await take_backup(tmp_path / "set", BackupPlan(databases={}, topics=tuple(specs), kafka=source),
                                     say=lambda line: None)
    finally:
        stop.set()
        await writer
    compacted = manifest.topic(specs[0].name)
    assert compacted is not None
    assert await _end_offset(kafka_bootstrap, TopicPartition(specs[0].name, 1)) > compacted.partitions[1].end_offset
    trimmed = manifest.topic(specs[1].name)
    assert trimmed is not None and trimmed.partitions[0].start_offset == 4 and trimmed.partitions[0].records == 6
    # The target has neither topic: the restore creates both from the manifest.
    await run_restore(tmp_path / "set", RestorePlan(databases={}, topics=tuple(s.name for s in specs), kafka=target),
                      say=lambda line: None)

    restored = await _assert_same_records(kafka_bootstrap, target_kafka, manifest, tuple(s.name for s in specs))
    assert restored == 13 + compacted.partitions[1].records
    tombstone = (await _read(target_kafka, TopicPartition(specs[0].name, 0), 6, 7))[0]
    assert tombstone[:2] == (b"device/0", None)
    # Old offset 7 was the 4th retained record (4, 5, 6 before it): it is offset 3 in the restored log.
    assert await _committed(target_kafka, group) == {TopicPartition(specs[1].name, 0): 3,
                                                     TopicPartition(specs[0].name, 0): 7}


def _sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def test_sqlite_databases_round_trip_and_a_non_empty_target_needs_replace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("VEE_DATABASE_URL", raising=False)
    source_dir, target_dir, folder = tmp_path / "src", tmp_path / "dst", tmp_path / "set"
    url = f"sqlite+aiosqlite:///{source_dir / 'vee.db'}"
    upgrade(_migrations("vee"), url)
    with sqlite3.connect(source_dir / "vee.db") as conn:  # WAL, as the running service has it
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executemany("INSERT INTO outbox (topic, message_key, message_value, headers, created_at) "
                         "VALUES (?, ?, ?, '[]', '2026-03-01 02:00:00')",
                         [("amiflow.vee.readings", f"m-{i}".encode(), b"\xff\xfe\x00" * i) for i in range(50)])

    assert cli.main(["backup", str(folder), "--only", "databases", "--services", "vee",
                     "--data-dir", str(source_dir)]) == 0
    assert cli.main(["restore", str(folder), "--data-dir", str(target_dir)]) == 0
    assert _sqlite_rows(target_dir / "vee.db") == _sqlite_rows(source_dir / "vee.db")
    assert len(_sqlite_rows(target_dir / "vee.db")["outbox"]) == 50

    with sqlite3.connect(target_dir / "vee.db") as conn:
        conn.execute("DELETE FROM outbox")
    assert cli.main(["restore", str(folder), "--data-dir", str(target_dir)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert cli.main(["restore", str(folder), "--data-dir", str(target_dir), "--replace-databases"]) == 0
    assert _sqlite_rows(target_dir / "vee.db") == _sqlite_rows(source_dir / "vee.db")
    assert (folder / MANIFEST).is_file() and verify_set(folder).databases[0].table_rows["outbox"] == 50
