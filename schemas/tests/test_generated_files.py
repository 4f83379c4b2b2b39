"""The committed JSON Schema and AsyncAPI files are exactly what the models generate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from amiflow_schemas import EVENT_TYPES
from amiflow_schemas.asyncapi import ASYNCAPI_FILE
from amiflow_schemas.contract import SCHEMA_DIR, SCHEMAS_ROOT
from amiflow_schemas.generate import generated_files, main, stale_files, write_files
from amiflow_schemas.topics import TOPICS
from jsonschema.validators import Draft202012Validator


def test_committed_files_are_not_stale() -> None:
    assert stale_files(SCHEMAS_ROOT) == [], "run `make schemas` and commit the result"


def test_generator_writes_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0

    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(generated_files())
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (SCHEMAS_ROOT / relative).read_bytes(), relative


def test_generating_twice_changes_nothing(tmp_path: Path) -> None:
    assert write_files(tmp_path)
    assert write_files(tmp_path) == []
    assert main(["--check", "--out", str(tmp_path)]) == 0


def _copy_of_committed(tmp_path: Path) -> Path:
    shutil.copytree(SCHEMAS_ROOT / SCHEMA_DIR, tmp_path / SCHEMA_DIR)
    shutil.copy(SCHEMAS_ROOT / ASYNCAPI_FILE, tmp_path / ASYNCAPI_FILE)
    return tmp_path


def test_check_lists_changed_missing_and_orphaned_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_of_committed(tmp_path)
    (root / SCHEMA_DIR / "ReadingReceived.v1.json").write_text("{}\n")
    (root / SCHEMA_DIR / "BalanceLow.v1.json").unlink()
    (root / SCHEMA_DIR / "MeterExploded.v1.json").write_text("{}\n")

    assert main(["--check", "--out", str(root)]) == 1

    report = capsys.readouterr().err
    assert "jsonschema/ReadingReceived.v1.json: out of date" in report
    assert "jsonschema/BalanceLow.v1.json: missing" in report
    assert "jsonschema/MeterExploded.v1.json: no model generates it" in report


@pytest.mark.parametrize("relative", sorted(f for f in generated_files() if f.endswith(".json")))
def test_every_committed_json_schema_is_a_valid_schema(relative: str) -> None:
    schema = json.loads((SCHEMAS_ROOT / relative).read_text(encoding="utf-8"))

    Draft202012Validator.check_schema(schema)


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SCHEMAS_ROOT / ASYNCAPI_FILE).read_text("utf-8"))
    return document


def test_asyncapi_channels_are_the_registry_topics_with_their_kafka_settings() -> None:
    channels = _asyncapi()["channels"]

    assert sorted(channels) == sorted(topic.name for topic in TOPICS)
    for topic in TOPICS:
        kafka = channels[topic.name]["bindings"]["kafka"]
        assert kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"] == {
            "cleanup.policy": [topic.cleanup_policy],
            "retention.ms": topic.retention_ms,
        }
        assert set(channels[topic.name]["messages"]) == set(topic.event_types or ["DeadLetter"])


def test_asyncapi_has_a_message_per_event_type_and_a_send_per_topic() -> None:
    document = _asyncapi()

    assert set(document["components"]["messages"]) == {*EVENT_TYPES, "DeadLetter"}
    producers = {op["channel"]["$ref"].removeprefix("#/channels/"): op
                 for op in document["operations"].values()}
    for topic in TOPICS:
        assert producers[topic.name]["action"] == "send"
        assert producers[topic.name]["tags"] == [{"name": f"producer:{topic.producer}"}]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_every_asyncapi_reference_resolves_inside_the_document() -> None:
    document = _asyncapi()

    for ref in _refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref
