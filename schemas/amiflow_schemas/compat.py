"""Compare the models' JSON Schema with the committed files and report breaking changes.

Within one event version only additions that old events still satisfy are allowed: a new
optional field, a new enum value, a wider type. Anything else needs a new version with an
upcaster, and the old version's file stays committed.

Regenerating the files after a breaking change makes them match the models again, so
``--against-history`` also compares each model with its file as git first recorded it: the
published contract, which no later commit may break.

Usage: python -m amiflow_schemas.compat [--dir DIR] [--against-history]
(exit 1 on a breaking change, 2 if --against-history cannot read the git history)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amiflow_schemas.contract import SCHEMA_DIR, SCHEMAS_ROOT, envelope_json_schema
from amiflow_schemas.registry import EVENT_TYPES, all_versions, upcasters_from

Schema = dict[str, Any]

_FILE_NAME = re.compile(r"^(?P<type>[A-Za-z0-9]+)\.v(?P<version>[0-9]+)\.json$")
# Keywords that, when added or tightened, accept fewer documents than before.
_LOWER_BOUNDS = ("minLength", "minItems", "minimum", "exclusiveMinimum")
_UPPER_BOUNDS = ("maxLength", "maxItems", "maximum", "exclusiveMaximum")
_EXACT = ("format", "pattern", "const")

BASELINE_COMMIT: str | None = "3d3854afb0611d296a997d68ba11295c899dbdf9"
"""If set, a file added before this commit is compared with its content at this commit instead.

The files were first committed in 43c29c2 as an unfinished snapshot: four hex fields still had
maxLength 1048576, lowered to 524288 in 3d3854a, the first complete contract.
"""


@dataclass(frozen=True)
class SchemaChange:
    """One difference between a committed schema and the current model."""

    path: str
    message: str
    breaking: bool

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'ok'}: {self.path}: {self.message}"


def compare_schemas(old: Schema, new: Schema, path: str = "$") -> list[SchemaChange]:
    """Differences from ``old`` to ``new`` (two whole JSON Schema documents)."""
    return _compare(_Node(old, old), _Node(new, new), path)


@dataclass(frozen=True)
class _Node:
    schema: Schema
    root: Schema  # the document its "#/$defs/..." references resolve in

    def resolved(self) -> _Node:
        schema = self.schema
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/$defs/")
            schema = self.root["$defs"][name]
        return _Node(schema, self.root)

    def alternatives(self) -> list[_Node]:
        node = self.resolved()
        options = node.schema.get("anyOf") or node.schema.get("oneOf")
        if options is None:
            return [node]
        return [alt for option in options for alt in _Node(option, self.root).alternatives()]

    def kind(self) -> str:
        kind = self.schema.get("type", "any")
        return kind if isinstance(kind, str) else "|".join(sorted(kind))


def _compare(old: _Node, new: _Node, path: str) -> list[SchemaChange]:
    old_by_kind = {alt.kind(): alt for alt in old.alternatives()}
    new_by_kind = {alt.kind(): alt for alt in new.alternatives()}
    changes: list[SchemaChange] = []
    gone = sorted(set(old_by_kind) - set(new_by_kind))
    if gone and "any" not in new_by_kind:
        verb = "changed type" if not set(old_by_kind) & set(new_by_kind) else "narrowed type"
        changes.append(SchemaChange(path, f"{verb}: {sorted(old_by_kind)} -> {sorted(new_by_kind)}",
                                    True))
    for kind in sorted(set(new_by_kind) - set(old_by_kind)):
        changes.append(SchemaChange(path, f"now also accepts {kind}", False))
    for kind in sorted(set(old_by_kind) & set(new_by_kind)):
        changes += _compare_same_kind(old_by_kind[kind], new_by_kind[kind], path)
    return changes


def _compare_same_kind(old: _Node, new: _Node, path: str) -> list[SchemaChange]:
    changes = _compare_constraints(old.schema, new.schema, path)
    if "properties" in old.schema or "properties" in new.schema:
        changes += _compare_objects(old, new, path)
    if "items" in old.schema and "items" in new.schema:
        old_items = _Node(old.schema["items"], old.root)
        changes += _compare(old_items, _Node(new.schema["items"], new.root), f"{path}[]")
    return changes


def _compare_objects(old: _Node, new: _Node, path: str) -> list[SchemaChange]:
    old_props, new_props = old.schema.get("properties", {}), new.schema.get("properties", {})
    old_required = set(old.schema.get("required", ()))
    new_required = set(new.schema.get("required", ()))
    changes = []
    for name in sorted(old_props.keys() - new_props.keys()):
        changes.append(SchemaChange(f"{path}.{name}", "removed field", True))
    for name in sorted(new_props.keys() - old_props.keys()):
        required = name in new_required
        message = "new required field" if required else "new optional field"
        changes.append(SchemaChange(f"{path}.{name}", message, required))
    for name in sorted(old_props.keys() & new_props.keys()):
        if name in new_required and name not in old_required:
            changes.append(SchemaChange(f"{path}.{name}", "field became required", True))
        old_prop, new_prop = _Node(old_props[name], old.root), _Node(new_props[name], new.root)
        changes += _compare(old_prop, new_prop, f"{path}.{name}")
    if new.schema.get("additionalProperties") is False and old.schema.get(
        "additionalProperties"
    ) is not False:
        changes.append(SchemaChange(path, "no longer accepts unknown fields", True))
    return changes


def _compare_constraints(old: Schema, new: Schema, path: str) -> list[SchemaChange]:
    changes = []
    old_enum: list[Any] | None = old.get("enum")
    new_enum: list[Any] | None = new.get("enum")
    if new_enum is not None and old_enum is None:
        changes.append(SchemaChange(path, "now restricted to enum values", True))
    elif new_enum is not None and old_enum is not None:
        removed = [value for value in old_enum if value not in new_enum]
        added = [value for value in new_enum if value not in old_enum]
        if removed:
            changes.append(SchemaChange(path, f"removed enum values {removed}", True))
        if added:
            # Old events still decode; consumers that switch over every value need a look.
            changes.append(SchemaChange(path, f"added enum values {added}", False))
    for keyword in _EXACT:
        if keyword in new and old.get(keyword) != new[keyword]:
            was = old.get(keyword, "(none)")
            changes.append(SchemaChange(path, f"{keyword} {was!r} -> {new[keyword]!r}", True))
    for keyword in _LOWER_BOUNDS:
        if keyword in new and (keyword not in old or new[keyword] > old[keyword]):
            changes.append(SchemaChange(path, f"{keyword} raised to {new[keyword]}", True))
    for keyword in _UPPER_BOUNDS:
        if keyword in new and (keyword not in old or new[keyword] < old[keyword]):
            changes.append(SchemaChange(path, f"{keyword} lowered to {new[keyword]}", True))
    return changes


def check_committed(schema_dir: Path) -> list[SchemaChange]:
    """Every change between the committed files in ``schema_dir`` and the current models."""
    current = {(cls.EVENT_TYPE, cls.EVENT_VERSION): cls for cls in all_versions()}
    changes: list[SchemaChange] = []
    for path in sorted(schema_dir.glob("*.json")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            changes.append(SchemaChange(path.name, "not named <EventType>.v<N>.json", True))
            continue
        key = (match["type"], int(match["version"]))
        changes += _check_file(path, key, current.get(key))
    return changes


def _check_file(path: Path, key: tuple[str, int], cls: Any) -> list[SchemaChange]:
    event_type, version = key
    if event_type not in EVENT_TYPES:
        return [SchemaChange(path.name, "event type was removed; old events no longer decode", True)]
    changes: list[SchemaChange] = []
    if cls is None:
        changes.append(SchemaChange(path.name, "no model for this version any more", True))
    else:
        committed = json.loads(path.read_text(encoding="utf-8"))
        changes += compare_schemas(committed, envelope_json_schema(cls), path.name)
    try:
        upcasters_from(event_type, version)
    except KeyError as exc:
        changes.append(SchemaChange(path.name, f"old events cannot be decoded: {exc.args[0]}", True))
    return changes


class HistoryUnavailable(RuntimeError):
    """The git history cannot be read: no git, not a checkout, or a shallow clone."""


def current_schemas() -> dict[tuple[str, int], Schema]:
    """The JSON Schema every event version's model generates now, by (type, version)."""
    return {(cls.EVENT_TYPE, cls.EVENT_VERSION): envelope_json_schema(cls) for cls in all_versions()}


def breaking_changes_since_first_published(
    root: Path = SCHEMAS_ROOT,
    current: Mapping[tuple[str, int], Schema] | None = None,
    baseline: str | None = BASELINE_COMMIT,
) -> list[str]:
    """Breaking changes from each schema file as first committed to the ``current`` schemas.

    ``root`` is the folder holding ``jsonschema/`` inside a git checkout (default ``schemas/``);
    ``current`` defaults to what the models generate. A file not committed yet is a new version
    and is not checked. Raises ``HistoryUnavailable`` when the history cannot be trusted.
    """
    current = current_schemas() if current is None else current
    problems = []
    for relative, commit in _first_added(root, baseline).items():
        match = _FILE_NAME.match(Path(relative).name)
        if match is None:
            continue  # check_committed reports misnamed files
        published = json.loads(_git(root, "show", f"{commit}:./{relative}"))
        schema = current.get((match["type"], int(match["version"])))
        where = f"{relative} as of {commit[:10]}"
        if schema is None:
            problems.append(f"{where}: published version has no model any more")
            continue
        changes = compare_schemas(published, schema)
        problems += [f"{where}: {c.path}: {c.message}" for c in changes if c.breaking]
    return problems


def _first_added(root: Path, baseline: str | None) -> dict[str, str]:
    """Each schema file ever committed under ``root`` -> the commit holding its published text."""
    if _git(root, "rev-parse", "--is-shallow-repository").strip() != "false":
        raise HistoryUnavailable(f"{root} is in a shallow clone; fetch the full history (fetch-depth: 0)")
    log = _git(root, "log", "--reverse", "--no-renames", "--diff-filter=A", "--relative",
               "--name-only", "--format=commit %H", "--", SCHEMA_DIR)
    first: dict[str, str] = {}
    commit = ""
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.removeprefix("commit ")
        elif line.endswith(".json"):
            first.setdefault(line, commit)
    if baseline is not None:
        baseline = _git(root, "rev-parse", "--verify", f"{baseline}^{{commit}}").strip()
        first = {path: baseline if _is_ancestor(root, added, baseline) else added
                 for path, added in first.items()}
    return first


def _is_ancestor(root: Path, commit: str, descendant: str) -> bool:
    status = _run_git(root, "merge-base", "--is-ancestor", commit, descendant).returncode
    if status not in (0, 1):
        raise HistoryUnavailable(f"cannot tell whether {commit} precedes {descendant} in {root}")
    return status == 0


def _git(root: Path, *args: str) -> str:
    result = _run_git(root, *args)
    if result.returncode != 0:
        raise HistoryUnavailable(f"git {' '.join(args)} failed in {root}: {result.stderr.strip()}")
    return result.stdout


def _run_git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        # Arguments are fixed here or come from git itself, and no shell is involved.
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,  # noqa: S603, S607
                              check=False)
    except OSError as exc:  # git missing, or root is not a directory
        raise HistoryUnavailable(f"cannot run git in {root}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints every change, returns 1 if any is breaking."""
    parser = argparse.ArgumentParser(prog="python -m amiflow_schemas.compat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=SCHEMAS_ROOT / SCHEMA_DIR)
    parser.add_argument("--against-history", action="store_true",
                        help="also compare the models with each file as git first recorded it")
    args = parser.parse_args(argv)
    changes = check_committed(args.dir)
    for change in changes:
        print(change)  # noqa: T201 - a CLI's report
    failed = any(change.breaking for change in changes)
    if args.against_history:
        try:
            problems = breaking_changes_since_first_published(args.dir.resolve().parent)
        except HistoryUnavailable as exc:
            print(f"history check impossible: {exc}", file=sys.stderr)  # noqa: T201
            return 2
        for problem in problems:
            print(problem)  # noqa: T201
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
