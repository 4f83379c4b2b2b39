"""Write (or, with --check, verify) the JSON Schema files and the AsyncAPI document.

Usage: python -m amiflow_schemas.generate [--check] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amiflow_schemas.asyncapi import ASYNCAPI_FILE, render_asyncapi
from amiflow_schemas.contract import SCHEMA_DIR, SCHEMAS_ROOT, schema_files


def generated_files() -> dict[str, str]:
    """Every generated file's path (relative to ``schemas/``) and exact text."""
    return {**schema_files(), ASYNCAPI_FILE: render_asyncapi()}


def write_files(root: Path) -> list[str]:
    """Write the generated files under ``root``; returns those whose content changed."""
    changed = []
    for relative, text in generated_files().items():
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(relative)
    return changed


def stale_files(root: Path) -> list[str]:
    """Generated files under ``root`` that are missing, differ, or that no model generates."""
    expected = generated_files()
    problems = []
    for relative, text in expected.items():
        path = root / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{relative}: out of date")
    # A version file without a model means a superseded version's class was deleted: its
    # schema would stop being checked, so that is reported rather than silently kept.
    for path in sorted((root / SCHEMA_DIR).glob("*.json")):
        relative = f"{SCHEMA_DIR}/{path.name}"
        if relative not in expected:
            problems.append(f"{relative}: no model generates it (keep the old version's class)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m amiflow_schemas.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    parser.add_argument("--out", type=Path, default=SCHEMAS_ROOT, help="default: %(default)s")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)  # noqa: T201 - a CLI reports on stderr
        if problems:
            print("run `make schemas` and commit the result", file=sys.stderr)  # noqa: T201
        return 1 if problems else 0
    for relative in write_files(args.out):
        print(f"wrote {relative}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
