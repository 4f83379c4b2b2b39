"""Meter model profiles shipped with ingest: one YAML file per model, validated on load.

A new meter model is a new file here (or a file given to ``load_profile_file``), not a code change.
The schema is ``ingest.core.protocols.profile.MeterProfile``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ingest.core.protocols.profile import MeterProfile, ProfileError, parse_profile

__all__ = ["MeterProfile", "ProfileError", "load_all", "load_profile", "load_profile_file", "profile_names"]

_SUFFIX = ".yaml"


def profile_names() -> list[str]:
    """The names of the shipped profiles."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(_SUFFIX) for f in files if f.name.endswith(_SUFFIX))


@cache
def load_profile(name: str) -> MeterProfile:
    """The shipped profile called ``name``; ProfileError names the known ones when it is missing."""
    if name not in profile_names():
        raise ProfileError(f"no meter profile {name!r}; known: {', '.join(profile_names())}")
    text = resources.files(__name__).joinpath(name + _SUFFIX).read_text(encoding="utf-8")
    profile = parse_text(text, f"profile {name}")
    if profile.name != name:
        raise ProfileError(f"profile {name}: the file is named {name}{_SUFFIX} but says name: {profile.name}")
    return profile


def load_profile_file(path: Path) -> MeterProfile:
    """A profile from a YAML file outside the package (a site's own meter models)."""
    return parse_text(path.read_text(encoding="utf-8"), str(path))


def load_all() -> dict[str, MeterProfile]:
    """Every shipped profile by name (validates them all)."""
    return {name: load_profile(name) for name in profile_names()}


def parse_text(text: str, source: str) -> MeterProfile:
    """Validate YAML text as a profile; ProfileError says where it is wrong."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ProfileError(f"{source}: a profile is a YAML mapping (name, protocol, utility, …)")
    return parse_profile(document, source)
