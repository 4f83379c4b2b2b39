"""deploy/k8s/base is generated from the topic registry and the service catalog: it must not drift."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from amiflow_schemas.topics import TOPICS

from deploy.k8s.generate import render


def test_committed_base_is_what_the_generator_writes() -> None:
    assert render.drift() == [], "deploy/k8s/base or components/monitoring is out of date: run `make k8s`"


@pytest.fixture
def base_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "base"
    shutil.copytree(render.BASE, copy)
    monkeypatch.setattr(render, "BASE", copy)
    return copy


def test_an_edited_topic_file_is_reported_as_drift(base_copy: Path) -> None:
    topics = base_copy / "kafka" / "topics.yaml"
    topics.write_text(topics.read_text().replace("partitions: 12", "partitions: 24", 1))
    assert render.drift() == ["base/kafka/topics.yaml"]


def test_a_missing_and_a_stray_file_are_reported_as_drift(base_copy: Path) -> None:
    (base_copy / "kafka" / "users.yaml").unlink()
    (base_copy / "services" / "legacy.yaml").write_text("---\n")
    assert render.drift() == ["base/kafka/users.yaml", "base/services/legacy.yaml"]


def test_writing_the_base_removes_the_drift(base_copy: Path) -> None:
    (base_copy / "services" / "legacy.yaml").write_text("---\n")
    (base_copy / "kafka" / "topics.yaml").write_text("---\n")
    render.write()
    assert render.drift() == []
    assert not (base_copy / "services" / "legacy.yaml").exists()


@pytest.fixture
def monitoring_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "monitoring"
    shutil.copytree(render.MONITORING, copy)
    monkeypatch.setattr(render, "MONITORING", copy)
    return copy


def test_a_dashboard_edited_in_its_config_map_is_reported_as_drift(monitoring_copy: Path) -> None:
    # The JSON file is the source: an edit of the generated ConfigMap alone would be lost at the next `make k8s`.
    dashboard = monitoring_copy / "dashboard.yaml"
    dashboard.write_text(dashboard.read_text().replace('"title": "amiflow"', '"title": "edited"', 1))
    assert render.drift() == ["components/monitoring/dashboard.yaml"]


def test_every_registry_topic_is_a_kafka_topic_as_registered() -> None:
    # Read back from the committed file, not from the generator: this is what reaches the cluster.
    committed = [d for d in yaml.safe_load_all((render.BASE / "kafka" / "topics.yaml").read_text()) if d]
    by_name = {d["spec"]["topicName"]: d["spec"] for d in committed}
    assert sorted(by_name) == sorted(t.name for t in TOPICS)
    for topic in TOPICS:
        spec = by_name[topic.name]
        assert spec["partitions"] == topic.partitions, topic.name
        assert spec["config"]["cleanup.policy"] == topic.cleanup_policy, topic.name
        assert spec["config"]["retention.ms"] == topic.retention_ms, topic.name
        # One broker down must not stop writes.
        assert spec["replicas"] >= spec["config"]["min.insync.replicas"] + 1, topic.name


def test_generated_files_repeat_what_they_share_rather_than_alias_it() -> None:
    # A dict used twice in one document becomes a YAML anchor and alias: valid, but unreadable in review.
    generated = {**render.files(), **render.monitoring_files()}
    assert [name for name, text in generated.items() if "&id0" in text] == []
