"""The public test vectors (shared/data/protocol-vectors.json), found beside the repository."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path("data") / "protocol-vectors.json"


def shared_folder() -> Path:
    """$AMIFLOW_SHARED, else the ``shared`` folder beside the repository (CI clones it there)."""
    configured = os.environ.get("AMIFLOW_SHARED")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "services").is_dir():
            return parent.parent / "shared"
    raise RuntimeError("cannot find the repository root above " + __file__)


def load_vectors() -> list[dict[str, Any]]:
    """Every vector, failing loudly when the file is missing (never a silently empty suite)."""
    path = shared_folder() / VECTORS
    if not path.is_file():
        raise pytest.UsageError(
            f"protocol vectors not found at {path}: set AMIFLOW_SHARED to the shared folder "
            "(the one holding data/protocol-vectors.json) or check it out beside the repository"
        )
    vectors: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    if not vectors:
        raise pytest.UsageError(f"{path} holds no vectors")
    return vectors


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``vector`` over every frame in the file, ``dlt645_vector`` over the DL/T 645 ones."""
    for name, wanted in (("vector", ""), ("dlt645_vector", "dlt645")):
        if name in metafunc.fixturenames:
            chosen = [(i, v) for i, v in enumerate(load_vectors()) if v["protocol"].startswith(wanted)]
            ids = [f"{i:02d}-{v['protocol']}-{v['meaning'][:40]}" for i, v in chosen]
            metafunc.parametrize(name, [v for _, v in chosen], ids=ids)
