"""The house rules that code review alone would let slip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_services_share_only_schemas_and_the_runtime() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_service_has_its_processes_and_migrations() -> None:
    for service in ("ingest", "vee", "billing", "commands", "notify"):
        package = ROOT / "services" / service / service
        assert (package / "main.py").is_file(), service
        assert (package / "config.py").is_file(), service
        assert list((package / "migrations" / "versions").glob("0001_*.py")), service
