"""The JSON Schema of each event version, as committed under ``schemas/jsonschema/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amiflow_schemas.envelope import envelope_model
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.registry import all_versions

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = "jsonschema"
SCHEMAS_ROOT = Path(__file__).resolve().parent.parent
"""The ``schemas/`` folder the generated files are committed in."""


def schema_file_name(event_type: str, version: int) -> str:
    """The committed file of one event version, relative to ``schemas/``."""
    return f"{SCHEMA_DIR}/{event_type}.v{version}.json"


def envelope_json_schema(payload_cls: type[EventPayload]) -> dict[str, Any]:
    """The JSON Schema of an envelope carrying ``payload_cls``, type and version pinned."""
    schema = envelope_model(payload_cls).model_json_schema(mode="validation")
    name, version = payload_cls.EVENT_TYPE, payload_cls.EVENT_VERSION
    schema["title"] = f"{name} v{version}"
    schema["description"] = f"{name} v{version} in the amiflow envelope: {_first_line(payload_cls.__doc__)}"
    properties = schema["properties"]
    properties["event_type"] = {"const": name, "title": "Event Type", "type": "string"}
    properties["event_version"] = {"const": version, "title": "Event Version", "type": "integer"}
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def render_json(document: dict[str, Any]) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, UTF-8 kept, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_files() -> dict[str, str]:
    """Every event version's schema file name and text, current and legacy versions."""
    return {
        schema_file_name(cls.EVENT_TYPE, cls.EVENT_VERSION): render_json(envelope_json_schema(cls))
        for cls in all_versions()
    }


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
