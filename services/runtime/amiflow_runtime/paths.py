"""Where the project's files are, for tools that run from a checkout (CLI, local broker, fixtures)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout's root: AMIFLOW_HOME if set, else the folder holding tools/kafka/pom.xml."""
    configured = os.environ.get("AMIFLOW_HOME")
    if configured:
        return Path(configured).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tools" / "kafka" / "pom.xml").is_file():
            return parent
    return Path.cwd()
