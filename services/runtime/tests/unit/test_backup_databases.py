"""Choosing the PostgreSQL tools, handing them a connection without the password, finding each database."""

from __future__ import annotations

from pathlib import Path

import pytest
from amiflow_runtime import cli
from amiflow_runtime.backup import service_settings
from amiflow_runtime.backup_databases import choose_bindir, libpq_target, tool_major
from amiflow_runtime.backup_manifest import BackupRefused


def test_libpq_gets_the_url_without_password_and_without_asyncpg_only_options() -> None:
    target = libpq_target("postgresql+asyncpg://billing:p%40ss@db.internal:6432/billing"
                          "?ssl=require&prepared_statement_cache_size=0&application_name=amiflow")
    assert target.password == "p@ss"
    assert "p@ss" not in target.dsn and "p%40ss" not in target.dsn
    assert target.dsn == "postgresql://billing@db.internal:6432/billing?application_name=amiflow&sslmode=require"
    assert target.database == "billing"
    assert target.on("postgres").dsn.startswith("postgresql://billing@db.internal:6432/postgres?")


def test_a_url_without_password_leaves_it_to_the_environment() -> None:
    assert libpq_target("postgresql://amiflow@127.0.0.1:5432/vee").password is None


def test_tool_version_lines_give_the_major() -> None:
    assert tool_major("pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)") == 15
    assert tool_major("pg_restore (PostgreSQL) 9.6.24") == 9
    with pytest.raises(ValueError):
        tool_major("bash: pg_dump: command not found")


def test_the_tools_of_the_servers_major_are_preferred_then_the_oldest_newer() -> None:
    available = {13: Path("/13"), 15: Path("/15"), 16: Path("/16")}
    assert choose_bindir(available, 15) == (15, Path("/15"))
    assert choose_bindir(available, 14) == (15, Path("/15"))
    with pytest.raises(BackupRefused, match="needs pg_dump/pg_restore 17 or newer; installed: 13, 15, 16"):
        choose_bindir(available, 17)


def test_each_service_database_comes_from_its_prefixed_setting_else_its_sqlite_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLING_DATABASE_URL", "postgresql+asyncpg://billing:pw@db:5432/billing")
    monkeypatch.delenv("VEE_DATABASE_URL", raising=False)
    monkeypatch.setenv("AMIFLOW_DATA_DIR", str(tmp_path / "from-env"))
    assert service_settings("billing").resolved_database_url == "postgresql+asyncpg://billing:pw@db:5432/billing"
    assert service_settings("vee").resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'from-env' / 'vee.db'}"
    assert service_settings("vee", tmp_path).resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'vee.db'}"


def test_backup_and_restore_options_parse() -> None:
    args = cli.build_parser().parse_args(["backup", "/b", "--only", "topics", "--topics", "a,b",
                                          "--services", "vee,billing"])
    assert (args.folder, args.only, args.topics, args.services) == ("/b", "topics", "a,b", ["vee", "billing"])
    args = cli.build_parser().parse_args(["restore", "/b", "--replace-databases", "--into-non-empty-topics",
                                          "--no-group-offsets"])
    assert args.services is None and args.replace_databases and args.into_non_empty_topics and args.no_group_offsets
    assert cli.main(["backup", "/b", "--only", "everything"]) == 2
