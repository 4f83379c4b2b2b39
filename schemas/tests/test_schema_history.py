"""A published schema version stays compatible even after its file has been regenerated.

The published contract is each file as git first recorded it, so these checks need the full
history: without it the repository check fails, unless AMIFLOW_SCHEMA_HISTORY=skip is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from amiflow_schemas.compat import HistoryUnavailable, breaking_changes_since_first_published, main
from amiflow_schemas.contract import SCHEMA_DIR, SCHEMAS_ROOT

SKIP_VARIABLE = "AMIFLOW_SCHEMA_HISTORY"

V1: dict[str, Any] = {
    "type": "object",
    "properties": {"meter_id": {"type": "string"}, "seen_at": {"type": "string", "format": "date-time"}},
    "required": ["meter_id", "seen_at"],
}
WITHOUT_SEEN_AT: dict[str, Any] = {
    "type": "object", "properties": {"meter_id": {"type": "string"}}, "required": ["meter_id"],
}


def _history_problems(root: Path) -> list[str]:
    try:
        return breaking_changes_since_first_published(root)
    except HistoryUnavailable as exc:
        if os.environ.get(SKIP_VARIABLE) == "skip":
            pytest.skip(f"{SKIP_VARIABLE}=skip and the git history is unavailable: {exc}")
        pytest.fail(f"cannot check the published schemas against git history: {exc}. Run the tests in a "
                    f"full git checkout, or set {SKIP_VARIABLE}=skip to skip this check on purpose.")


def test_no_published_schema_version_changed_incompatibly() -> None:
    assert _history_problems(SCHEMAS_ROOT) == []


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid",
               "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo: Path, files: dict[str, dict[str, Any]]) -> str:
    for name, schema in files.items():
        path = repo / SCHEMA_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "schemas")
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    return tmp_path


def test_a_removed_required_field_is_reported_against_the_first_commit(repo: Path) -> None:
    first = _commit(repo, {"Sample.v1.json": V1})

    assert breaking_changes_since_first_published(repo, {("Sample", 1): V1}, baseline=None) == []
    assert breaking_changes_since_first_published(repo, {("Sample", 1): WITHOUT_SEEN_AT}, baseline=None) == [
        f"jsonschema/Sample.v1.json as of {first[:10]}: $.seen_at: removed field"
    ]


def test_regenerating_and_committing_the_file_does_not_hide_the_break(repo: Path) -> None:
    _commit(repo, {"Sample.v1.json": V1})
    _commit(repo, {"Sample.v1.json": WITHOUT_SEEN_AT})

    problems = breaking_changes_since_first_published(repo, {("Sample", 1): WITHOUT_SEEN_AT}, baseline=None)

    assert [p.split(": ", 1)[1] for p in problems] == ["$.seen_at: removed field"]


def test_a_version_not_committed_yet_is_not_checked(repo: Path) -> None:
    _commit(repo, {"Sample.v1.json": V1})
    (repo / SCHEMA_DIR / "Sample.v2.json").write_text(json.dumps(WITHOUT_SEEN_AT))

    current = {("Sample", 1): V1, ("Sample", 2): {"type": "string"}}

    assert breaking_changes_since_first_published(repo, current, baseline=None) == []


def test_a_published_version_whose_model_is_gone_is_reported(repo: Path) -> None:
    _commit(repo, {"Sample.v1.json": V1})

    assert breaking_changes_since_first_published(repo, {}, baseline=None) == [
        f"jsonschema/Sample.v1.json as of {_git(repo, 'rev-parse', 'HEAD')[:10]}: "
        "published version has no model any more"
    ]


def test_a_baseline_replaces_earlier_snapshots_but_not_later_additions(repo: Path) -> None:
    _commit(repo, {"Sample.v1.json": V1})
    baseline = _commit(repo, {"Sample.v1.json": WITHOUT_SEEN_AT})
    _commit(repo, {"Other.v1.json": V1})
    current = {("Sample", 1): WITHOUT_SEEN_AT, ("Other", 1): WITHOUT_SEEN_AT}

    problems = breaking_changes_since_first_published(repo, current, baseline=baseline)

    assert [p.split(" as of ")[0] for p in problems] == ["jsonschema/Other.v1.json"]


def test_a_directory_outside_git_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))

    with pytest.raises(HistoryUnavailable, match="not a git repository"):
        breaking_changes_since_first_published(tmp_path, {})


def test_a_shallow_clone_is_an_error(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _commit(repo, {"Sample.v1.json": V1})
    _commit(repo, {"Other.v1.json": V1})
    clone = tmp_path_factory.mktemp("shallow") / "clone"
    _git(repo, "clone", "-q", "--depth", "1", repo.as_uri(), str(clone))

    with pytest.raises(HistoryUnavailable, match="shallow clone"):
        breaking_changes_since_first_published(clone, {}, baseline=None)


def test_missing_git_is_an_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo))

    with pytest.raises(HistoryUnavailable, match="cannot run git"):
        breaking_changes_since_first_published(repo, {})


def test_without_history_the_check_fails_unless_skipped_on_purpose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv(SKIP_VARIABLE, raising=False)
    with pytest.raises(pytest.fail.Exception, match=f"set {SKIP_VARIABLE}=skip"):
        _history_problems(tmp_path)

    monkeypatch.setenv(SKIP_VARIABLE, "skip")
    with pytest.raises(pytest.skip.Exception, match=f"{SKIP_VARIABLE}=skip and the git history is unavailable"):
        _history_problems(tmp_path)


def test_the_command_line_exits_2_when_history_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    directory = tmp_path / SCHEMA_DIR
    shutil.copytree(SCHEMAS_ROOT / SCHEMA_DIR, directory)

    assert main(["--dir", str(directory)]) == 0
    assert main(["--dir", str(directory), "--against-history"]) == 2
