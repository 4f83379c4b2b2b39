"""`amiflow backup` and `amiflow restore`: every service database and every registry topic as one set.

What a backup takes, in this order:

1. the committed offsets of every consumer group on the backed-up topics;
2. each service database, one after the other, each in a single snapshot (pg_dump inside an exported
   repeatable-read snapshot, row counts from that same snapshot; SQLite's backup API in one read
   transaction), while the services keep running;
3. the topics' high watermarks (and earliest retained offsets);
4. every partition's records from the earliest retained offset up to that watermark;
5. the files' sha256 checksums and, last, the manifest (backup_manifest.py).

Why a restore of such a set is consistent. A service database holds projections of the events it
consumed (their ids in its inbox), the state its own commands decided, and its outbox: events decided
but not yet published.

- Watermarks after the dumps: every event a dumped database has applied was read from a topic before
  its dump, so it lies below the watermark. No restored projection or inbox refers to an event the
  restored topics lack. Taken before the dumps, a database could show an event the topic backup does
  not have, with its outbox row already deleted: that event would be gone for good.
- Group offsets before the dumps: a consumer commits an offset only after the database transaction
  that applied the record, so an offset read before the dump is at or behind what the dump holds.
  Restored consumers resume there, read again the few records in between, and their inbox drops them
  (they are minutes old, far inside inbox_retention_days). Read after the dumps, an offset could be
  ahead of a dump: the records in between would never be applied.
- The outbox: an event still in a dumped outbox may have been published before the watermark too, so
  the topic backup has it as well. After the restore the relay publishes it again and every consumer
  drops the second copy by event id, exactly as after a relay crash.
- Not exact: separate databases share no snapshot, so they are dumped one after the other and the
  topics are read after them. An event a service decided after its own dump can be on the restored
  topics (and in a later-dumped projection) while the deciding service's tables do not show it. Where a
  service's state is the fold of its own topics (billing: `python -m billing.main rebuild` into a
  fresh database) a rebuild closes that gap; for a set that lines up to the event, stop the services
  (Ctrl-C on `amiflow up`, or scale the deployments to zero) while the backup runs. The manifest
  records each dump's start and end, which bound the window.

A restore verifies every checksum before it touches anything, then restores the databases (into empty
ones; --replace-databases overwrites), the topics (into empty ones, created from the manifest when
missing; --into-non-empty-topics appends) and finally the consumer groups' offsets, translated to the
new offsets (PositionMap). Run it with the services stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError

from amiflow_runtime.backup_databases import (
    RestoredDatabase,
    dump_postgres,
    dump_sqlite,
    is_sqlite,
    restore_postgres,
    restore_sqlite,
)
from amiflow_runtime.backup_manifest import (
    BackupRefused,
    DatabaseBackup,
    Manifest,
    TopicBackup,
    checksum_files,
    read_manifest,
    verify_set,
    write_manifest,
)
from amiflow_runtime.backup_topics import (
    capture_group_offsets,
    copy_topics,
    offset_marks,
    restore_topics,
)
from amiflow_runtime.config import ServiceSettings, settings_config
from amiflow_runtime.kafka import TopicLike

Say = Callable[[str], None]


@dataclass(frozen=True)
class BackupPlan:
    """What to back up: service -> database URL, and the topics (registry entries)."""

    databases: dict[str, str]
    topics: tuple[TopicLike, ...]
    kafka: ServiceSettings


@dataclass(frozen=True)
class RestorePlan:
    """What to restore: service -> target database URL, topic names, and how to treat occupied targets."""

    databases: dict[str, str]
    topics: tuple[str, ...]
    kafka: ServiceSettings
    group_offsets: bool = True
    replace_databases: bool = False
    into_non_empty_topics: bool = False


def amiflow_version() -> str:
    """The installed amiflow distribution's version."""
    try:
        return metadata.version("amiflow")
    except metadata.PackageNotFoundError:
        return "unknown"


def service_settings(service: str, data_dir: Path | None = None) -> ServiceSettings:
    """A service's database settings as `<service>.main` reads them: <SVC>_DATABASE_URL, else the SQLite
    file in AMIFLOW_DATA_DIR. The runtime imports no service, so the prefix is applied here."""
    namespace = {"model_config": settings_config(f"{service.upper()}_"), "service_name": service,
                 "__module__": __name__}
    settings_class = type(f"{service.capitalize()}DatabaseSettings", (ServiceSettings,), namespace)
    settings: ServiceSettings = settings_class(**({"data_dir": data_dir} if data_dir else {}))
    return settings


def _database_file(service: str, url: str) -> str:
    return f"databases/{service}.{'sqlite' if is_sqlite(url) else 'pgdump'}"


async def _dump(folder: Path, service: str, url: str) -> DatabaseBackup:
    rel = _database_file(service, url)
    if is_sqlite(url):
        entry = await asyncio.to_thread(dump_sqlite, service, url, folder / rel)
    else:
        entry = await dump_postgres(service, url, folder / rel)
    return entry.model_copy(update={"file": rel})


def _prepare_folder(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupRefused(f"{folder} exists and is not an empty folder; a backup set gets a folder of its own")
    folder.mkdir(parents=True, exist_ok=True)


def _rows(entry: DatabaseBackup) -> str:
    return f"{len(entry.table_rows)} tables, {sum(entry.table_rows.values())} rows"


async def take_backup(folder: Path, plan: BackupPlan, say: Say) -> Manifest:
    """Write one backup set into the new or empty `folder`, in the order the module docstring explains."""
    _prepare_folder(folder)
    try:
        return await _take(folder, plan, say)
    except BaseException:
        say(f"backup failed: {folder} holds an incomplete set without a manifest; delete it before trying again")
        raise


async def _take(folder: Path, plan: BackupPlan, say: Say) -> Manifest:
    started, order = datetime.now(UTC), []
    names = [t.name for t in plan.topics]
    groups = await capture_group_offsets(plan.kafka, names) if names else ()
    if names:
        order.append("consumer group offsets")
        say(f"consumer group offsets: {len(groups)} group(s)")
    databases = []
    for service, url in plan.databases.items():
        entry = await _dump(folder, service, url)
        databases.append(entry)
        say(f"database {service} ({entry.engine} {entry.location}): {_rows(entry)}")
    if databases:
        order.append("databases: " + ", ".join(plan.databases))
    topics: tuple[TopicBackup, ...] = ()
    if names:
        marks = await offset_marks(plan.kafka, names)
        order += ["topic high watermarks", "topic records up to the watermarks"]
        topics = await copy_topics(plan.kafka, plan.topics, marks, folder)
        for topic in topics:
            say(f"topic {topic.name}: {sum(p.records for p in topic.partitions)} records "
                f"in {len(topic.partitions)} partition(s)")
    files = [d.file for d in databases] + [p.file for t in topics for p in t.partitions]
    manifest = Manifest(amiflow_version=amiflow_version(), started_at=started, finished_at=datetime.now(UTC),
                        order=(*order, "checksums and manifest"), databases=tuple(databases), topics=topics,
                        consumer_groups=groups, files=checksum_files(folder, files))
    write_manifest(folder, manifest)
    return manifest


async def _restore_database(folder: Path, entry: DatabaseBackup, url: str, replace: bool) -> RestoredDatabase:
    if (entry.engine == "sqlite") != is_sqlite(url):
        target = "SQLite" if is_sqlite(url) else "PostgreSQL"
        raise BackupRefused(f"{entry.service}: the backup is {entry.engine}, the target database is {target}; "
                            f"set {entry.service.upper()}_DATABASE_URL to a database of the same kind")
    if entry.engine == "sqlite":
        return await asyncio.to_thread(restore_sqlite, entry, folder / entry.file, url, replace)
    return await restore_postgres(entry, folder / entry.file, url, replace)


def _selected(manifest: Manifest, plan: RestorePlan) -> None:
    missing = [f"database {s}" for s in plan.databases if manifest.database(s) is None]
    missing += [f"topic {t}" for t in plan.topics if manifest.topic(t) is None]
    if missing:
        raise BackupRefused("the backup set has no " + ", ".join(missing))


async def run_restore(folder: Path, plan: RestorePlan, say: Say) -> Manifest:
    """Verify the set, then restore the chosen databases, topics and consumer group offsets."""
    manifest = verify_set(folder)
    say(f"verified {len(manifest.files)} file(s) of the backup taken {manifest.started_at:%Y-%m-%d %H:%M:%S %Z} "
        f"by amiflow {manifest.amiflow_version}")
    _selected(manifest, plan)
    for service, url in plan.databases.items():
        entry = manifest.database(service)
        assert entry is not None  # _selected checked
        done = await _restore_database(folder, entry, url, plan.replace_databases)
        say(f"database {service} -> {done.location}: {done.tables} tables, {done.rows} rows"
            + (" (database created)" if done.created else ""))
    if plan.topics:
        topics = [t for t in manifest.topics if t.name in plan.topics]
        groups = manifest.consumer_groups if plan.group_offsets else ()
        for restored in await restore_topics(plan.kafka, folder, topics, groups, plan.into_non_empty_topics):
            say(f"topic {restored.name}: {restored.records} records into {restored.partitions} partition(s)")
        moved = [g for g in groups if any(o.topic in plan.topics for o in g.offsets)]
        if moved:
            say(f"consumer group offsets: {len(moved)} group(s) committed, translated to the new offsets")
    return manifest


# ---------------------------------------------------------------------------------------------
# The commands (argument parsing lives in cli.py)


def _kafka(args: argparse.Namespace) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers=args.bootstrap) if args.bootstrap else ServiceSettings()


def _registry_topics(names: str | None) -> tuple[TopicLike, ...]:
    from amiflow_schemas.topics import TOPICS, topic_named

    if names is None:
        return tuple(TOPICS)
    try:
        return tuple(topic_named(n.strip()) for n in names.split(",") if n.strip())
    except KeyError as exc:
        raise BackupRefused(str(exc.args[0])) from None


def _database_urls(services: Sequence[str], data_dir: str | None) -> dict[str, str]:
    folder = Path(data_dir).resolve() if data_dir else None
    return {s: service_settings(s, folder).resolved_database_url for s in services}


def _run(action: Callable[[], object]) -> int:
    # aiokafka narrates subscriptions and coordinators at INFO: the operator wants our lines, and its warnings.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        action()
    except (KafkaError, asyncpg.PostgresError) as exc:
        raise BackupRefused(f"{type(exc).__name__}: {exc}") from exc
    return 0


def backup_command(args: argparse.Namespace, say: Say) -> int:
    """`amiflow backup FOLDER`: take a backup set; `say` prints progress lines."""
    folder = Path(args.folder).resolve()
    databases = _database_urls(args.services, args.data_dir) if args.only != "topics" else {}
    topics = _registry_topics(args.topics) if args.only != "databases" else ()
    plan = BackupPlan(databases=databases, topics=topics, kafka=_kafka(args))

    def act() -> None:
        manifest = asyncio.run(take_backup(folder, plan, say))
        say(f"backup complete in {folder}: {len(manifest.databases)} database(s), {len(manifest.topics)} "
            f"topic(s), {len(manifest.files)} file(s); restore with `amiflow restore {folder}`")

    return _run(act)


def restore_command(args: argparse.Namespace, say: Say) -> int:
    """`amiflow restore FOLDER`: verify a set and restore it; `say` prints progress lines."""
    folder = Path(args.folder).resolve()
    if args.verify_only:
        manifest = verify_set(folder)
        say(f"{folder}: {len(manifest.files)} file(s) match the manifest; {len(manifest.databases)} database(s), "
            f"{len(manifest.topics)} topic(s), {len(manifest.consumer_groups)} consumer group(s)")
        return 0
    manifest = read_manifest(folder)  # every file is verified by run_restore before anything is touched
    services = args.services or [d.service for d in manifest.databases]
    topics = tuple(n.strip() for n in args.topics.split(",") if n.strip()) if args.topics else \
        tuple(t.name for t in manifest.topics)
    plan = RestorePlan(databases=_database_urls(services, args.data_dir) if args.only != "topics" else {},
                       topics=topics if args.only != "databases" else (), kafka=_kafka(args),
                       group_offsets=not args.no_group_offsets, replace_databases=args.replace_databases,
                       into_non_empty_topics=args.into_non_empty_topics)

    def act() -> None:
        try:
            asyncio.run(run_restore(folder, plan, say))
        except BaseException:
            say("restore stopped: only what is listed above was restored; fix the cause, then restore the rest "
                "with --only, --services or --topics")
            raise
        say("restore complete; start the services (their outbox relays publish what was still pending)")

    return _run(act)
