"""Dump and restore one service database: PostgreSQL with pg_dump / pg_restore, SQLite with its backup API.

PostgreSQL: the rows are counted and pg_dump runs inside one exported snapshot, so the counts in the
manifest describe exactly the archive; pg_dump and pg_restore come from /usr/lib/postgresql/<major>/bin
of the server's major version (PG_BINDIR adds one more), because pg_dump refuses newer servers and a
newer pg_restore may emit settings an older server rejects. The password travels in PGPASSWORD,
never on a command line (visible in `ps`) and never in a message.

SQLite: `Connection.backup` copies the whole file in one step under a read transaction: in WAL mode
the running service keeps writing meanwhile and the copy is one consistent snapshot.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url

from amiflow_runtime.backup_manifest import BackupRefused, DatabaseBackup, describe_database_url

# Query parameters libpq understands; asyncpg-only ones (prepared_statement_cache_size, ...) would make
# pg_dump reject the connection string.
_LIBPQ_PARAMS = frozenset({"sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "connect_timeout",
                           "options", "target_session_attrs"})
_TOOL_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")
_USER_TABLES = ("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS qualified, "
                "schemaname || '.' || tablename AS name FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 2")
_USER_RELATIONS = ("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN "
                   "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'")


@dataclass(frozen=True)
class RestoredDatabase:
    """What a restore did to one service database."""

    service: str
    engine: str
    location: str
    tables: int
    rows: int
    created: bool = False


@dataclass(frozen=True)
class LibpqTarget:
    """A PostgreSQL database as libpq tools take it: a URI without the password, and the password aside."""

    dsn: str
    password: str | None
    database: str

    def on(self, database: str) -> LibpqTarget:
        """The same server and credentials, another database."""
        return LibpqTarget(str(make_url(self.dsn).set(database=database).render_as_string(hide_password=False)),
                           self.password, database)


def libpq_target(url: str) -> LibpqTarget:
    """A SQLAlchemy PostgreSQL URL (any driver) as a libpq URI plus password; asyncpg's ssl= becomes sslmode."""
    parsed = make_url(url)
    query = {k: v for k, v in parsed.query.items() if k in _LIBPQ_PARAMS}
    ssl = parsed.query.get("ssl")
    if isinstance(ssl, str) and "sslmode" not in query:
        query["sslmode"] = "require" if ssl.lower() in ("true", "1") else ssl
    plain = URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                       database=parsed.database, query=query)
    return LibpqTarget(plain.render_as_string(hide_password=False), parsed.password, parsed.database or "")


def tool_major(version_line: str) -> int:
    """The major version in `pg_dump --version` output: 'pg_dump (PostgreSQL) 15.10 (Debian …)' -> 15."""
    found = _TOOL_VERSION.search(version_line)
    if not found:
        raise ValueError(f"not a PostgreSQL tool version: {version_line!r}")
    return int(found.group(1))


def choose_bindir(available: Mapping[int, Path], at_least: int) -> tuple[int, Path]:
    """The tools of major `at_least` if installed, else the oldest newer ones; refuse older ones."""
    fitting = sorted(major for major in available if major >= at_least)
    if not fitting:
        have = ", ".join(str(m) for m in sorted(available)) or "none"
        raise BackupRefused(f"PostgreSQL {at_least} needs pg_dump/pg_restore {at_least} or newer; installed: {have} "
                            f"(apt-get install postgresql-client-{at_least}, or set PG_BINDIR)")
    return fitting[0], available[fitting[0]]


def installed_pg_bindirs() -> dict[int, Path]:
    """Major version -> folder with pg_dump and pg_restore: Debian's /usr/lib/postgresql/*/bin, PG_BINDIR, PATH."""
    found = {int(Path(d).parent.name): Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")
             if Path(d).parent.name.isdigit() and (Path(d) / "pg_dump").is_file()}
    extra = [os.environ.get("PG_BINDIR"), str(Path(w).parent) if (w := shutil.which("pg_dump")) else None]
    for folder in filter(None, extra):
        tool = Path(folder) / "pg_dump"
        if tool.is_file():
            done = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
            found.setdefault(tool_major(done.stdout), Path(folder))
    return found


async def _run_tool(cmd: list[str], password: str | None) -> None:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        text = (err or out).decode(errors="replace").strip()[-2000:]
        raise BackupRefused(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {text}")


async def _connect(target: LibpqTarget) -> Any:
    return await asyncpg.connect(dsn=target.dsn, password=target.password)


async def _table_rows(conn: Any) -> dict[str, int]:
    tables = await conn.fetch(_USER_TABLES)
    return {row["name"]: int(await conn.fetchval(f"SELECT count(*) FROM {row['qualified']}")) for row in tables}


async def dump_postgres(service: str, url: str, out: Path) -> DatabaseBackup:
    """pg_dump --format=custom of one database into `out`, with row counts from the same snapshot."""
    target = libpq_target(url)
    started = datetime.now(UTC)
    conn = await _connect(target)
    try:
        version = str(await conn.fetchval("SHOW server_version")).split()[0]
        dump_major, bindir = choose_bindir(installed_pg_bindirs(), conn.get_server_version().major)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            rows = await _table_rows(conn)
            out.parent.mkdir(parents=True, exist_ok=True)
            await _run_tool([str(bindir / "pg_dump"), "--format=custom", f"--snapshot={snapshot}", "--no-password",
                             f"--file={out}", f"--dbname={target.dsn}"], target.password)
    finally:
        await conn.close()
    return DatabaseBackup(service=service, engine="postgresql", file="", location=describe_database_url(url),
                          server_version=version, dump_tool_major=dump_major, table_rows=rows,
                          started_at=started, finished_at=datetime.now(UTC))


async def _connect_or_create(target: LibpqTarget) -> tuple[Any, bool]:
    try:
        return await _connect(target), False
    except asyncpg.InvalidCatalogNameError:
        admin = await _connect(target.on("postgres"))
        try:
            await admin.execute('CREATE DATABASE "{}"'.format(target.database.replace('"', '""')))
        finally:
            await admin.close()
        return await _connect(target), True


def _check_counts(service: str, expected: Mapping[str, int], found: Mapping[str, int]) -> None:
    wrong = [f"{table}: {found.get(table, 'missing')} rows, the backup has {rows}"
             for table, rows in expected.items() if found.get(table) != rows]
    if wrong:
        raise BackupRefused(f"{service}: the restored database differs from the backup: " + "; ".join(wrong))


async def restore_postgres(entry: DatabaseBackup, archive: Path, url: str, replace: bool) -> RestoredDatabase:
    """pg_restore an archive into the (empty, or replaced) database; the database is created if missing."""
    target = libpq_target(url)
    conn, created = await _connect_or_create(target)
    try:
        server_major = conn.get_server_version().major
        occupied = int(await conn.fetchval(_USER_RELATIONS))
    finally:
        await conn.close()
    if occupied and not replace:
        raise BackupRefused(f"{entry.service}: database {describe_database_url(url)} is not empty ({occupied} "
                            "tables, views or sequences); restore into an empty database or pass --replace-databases")
    _, bindir = choose_bindir(installed_pg_bindirs(), max(server_major, entry.dump_tool_major or 0))
    clean = ["--clean", "--if-exists"] if occupied else []
    await _run_tool([str(bindir / "pg_restore"), *clean, "--no-owner", "--no-acl", "--exit-on-error",
                     "--single-transaction", "--no-password", f"--dbname={target.dsn}", str(archive)],
                    target.password)
    conn = await _connect(target)
    try:
        rows = await _table_rows(conn)
    finally:
        await conn.close()
    _check_counts(entry.service, entry.table_rows, rows)
    return RestoredDatabase(entry.service, "postgresql", describe_database_url(url), len(entry.table_rows),
                            sum(entry.table_rows.values()), created)


def is_sqlite(url: str) -> bool:
    """Whether a SQLAlchemy URL names a SQLite database (amiflow_runtime.db has the same, but imports Alembic)."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupRefused("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _sqlite_table_rows(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
    quoted = {name: '"{}"'.format(name.replace('"', '""')) for name in names}
    return {name: int(conn.execute(f"SELECT count(*) FROM {quoted[name]}").fetchone()[0]) for name in names}


def dump_sqlite(service: str, url: str, out: Path) -> DatabaseBackup:
    """A consistent copy of a (possibly running) service's SQLite file, in rollback-journal mode."""
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupRefused(f"{service}: no SQLite database at {source} (never migrated?); run `amiflow migrate` "
                            "or leave the service out with --services")
    started = datetime.now(UTC)
    out.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(out)) as dst:
        src.backup(dst)  # pages=-1: one step, one read transaction, one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file, no -wal beside it
        rows = _sqlite_table_rows(dst)
    return DatabaseBackup(service=service, engine="sqlite", file="", location=describe_database_url(url),
                          table_rows=rows, started_at=started, finished_at=datetime.now(UTC))


def restore_sqlite(entry: DatabaseBackup, copy: Path, url: str, replace: bool) -> RestoredDatabase:
    """Copy a backed-up SQLite file into the service's database file through the backup API."""
    target = sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    existed = target.is_file()
    # Read-only, so the backup file (and its checksum) stays exactly as it was.
    with closing(sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)) as src, \
            closing(sqlite3.connect(target, timeout=30)) as dst:
        occupied = len(_sqlite_table_rows(dst))
        if occupied and not replace:
            raise BackupRefused(f"{entry.service}: {target} is not empty ({occupied} tables); restore into an "
                                "empty database or pass --replace-databases")
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")  # what the services use; they would switch it on connect anyway
        rows = _sqlite_table_rows(dst)
    _check_counts(entry.service, entry.table_rows, rows)
    return RestoredDatabase(entry.service, "sqlite", str(target), len(rows), sum(rows.values()), not existed)
