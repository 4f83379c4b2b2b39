"""Fixtures of the deploy tests: the overlays built once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the generator is the `deploy.k8s.generate` package, run from the root
    sys.path.insert(0, str(ROOT))

from deploy.k8s.generate.validation import K8S_DIR, OVERLAYS, kustomize_build  # noqa: E402

_SERIES = pytest.StashKey[subprocess.Popen[str]]()


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay, built by kustomize (side by side: each build is a process of its own)."""
    with ThreadPoolExecutor(len(OVERLAYS)) as pool:
        built = pool.map(lambda overlay: kustomize_build(K8S_DIR / "overlays" / overlay), OVERLAYS)
        return dict(zip(OVERLAYS, built, strict=True))


def _series_process(config: pytest.Config) -> subprocess.Popen[str]:
    process: subprocess.Popen[str] | None = config.stash.get(_SERIES, None)
    if process is None:
        process = subprocess.Popen([sys.executable, "-m", "deploy.k8s.generate.promql"], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        config.stash[_SERIES] = process
    return process


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Importing every service takes seconds: start it now, beside the kustomize builds, if a test needs it.
    if any("exposed_series" in getattr(item, "fixturenames", ()) for item in items):
        _series_process(config)


@pytest.fixture(scope="session")
def exposed_series(pytestconfig: pytest.Config) -> dict[str, list[str] | None]:
    """Series name -> label names of every metric the services register (imported in a process of their own,
    so that metrics registered by tests cannot stand in for theirs)."""
    out, err = _series_process(pytestconfig).communicate(timeout=300)
    if _series_process(pytestconfig).returncode:
        raise RuntimeError(f"importing the services failed:\n{err}")
    series: dict[str, list[str] | None] = json.loads(out)
    return series
