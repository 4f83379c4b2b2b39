"""`amiflow audit verify` finds each service's database the way `amiflow migrate` does, and names the service,
the sequence number and what is wrong (here: the commands service's embedded SQLite database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from amiflow_runtime.audit import attempt_record, outcome_record
from amiflow_runtime.audit_db import AuditTrail
from amiflow_runtime.clock import SystemClock
from amiflow_runtime.db import make_engine, outbox_table, sessions
from sqlalchemy import MetaData, text

pytestmark = pytest.mark.integration


def amiflow(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMIFLOW_DATA_DIR": str(data_dir)}
    env.pop("COMMANDS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "amiflow_runtime.cli", *args], env=env, capture_output=True,
                          text=True, check=False, timeout=240)


async def _record_actions(database: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{database}")
    try:
        trail = AuditTrail("commands", sessions(engine), outbox_table(MetaData()), SystemClock())
        for subject in ("op-7", "op-8"):
            [attempt] = await trail.record(attempt_record(
                tenant="riverside", who={"subject": subject}, where={}, what={"method": "POST",
                                                                               "route": "/v1/commands"},
                why=None, objects=[]))
            await trail.record(outcome_record(tenant="riverside", attempt_id=attempt.document["id"], status=201,
                                              ids={}))
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER audit_records_no_update"))
            await conn.execute(text("UPDATE audit_records SET record = replace(record, 'op-8', 'op-9') "
                                    "WHERE seq = 3"))
    finally:
        await engine.dispose()


async def test_verify_runs_for_each_service_and_names_what_is_wrong(tmp_path: Path) -> None:
    migrated = amiflow(tmp_path, "migrate", "--services", "commands")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    intact = amiflow(tmp_path, "audit", "verify", "--services", "commands")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "commands: intact: 0 records" in intact.stdout and "1 audit trail(s) intact" in intact.stdout

    await _record_actions(tmp_path / "commands.db")
    broken = amiflow(tmp_path, "audit", "verify", "--services", "commands")
    assert broken.returncode == 1
    assert "commands: seq 3: hash mismatch: the record is not what was hashed (altered)" in broken.stdout
    assert "the audit trail of commands does not verify" in broken.stdout


def test_a_database_without_the_trail_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    answer = amiflow(tmp_path, "audit", "verify", "--services", "commands")
    assert answer.returncode == 1
    assert "commands: the audit trail cannot be read" in answer.stdout and "Traceback" not in answer.stderr
