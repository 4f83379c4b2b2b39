"""Fixtures of the deploy tests: the overlays built once per session."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the generator is the `deploy.k8s.generate` package, run from the root
    sys.path.insert(0, str(ROOT))

from deploy.k8s.generate.validation import K8S_DIR, OVERLAYS, kustomize_build  # noqa: E402


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay, built by kustomize (side by side: each build is a process of its own)."""
    with ThreadPoolExecutor(len(OVERLAYS)) as pool:
        built = pool.map(lambda overlay: kustomize_build(K8S_DIR / "overlays" / overlay), OVERLAYS)
        return dict(zip(OVERLAYS, built, strict=True))
