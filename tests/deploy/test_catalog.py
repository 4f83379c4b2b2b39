"""The service catalog the manifests come from says what the code does: topics, groups, writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from amiflow_schemas.topics import EVERY_SERVICE, TOPICS
from billing.config import BillingSettings
from console.config import UPSTREAM_PORTS, ConsoleSettings
from notify.config import NotifySettings
from vee.config import VeeSettings

from deploy.k8s.generate.catalog import CONSOLE, SERVICES, Service, service_named

ROOT = Path(__file__).resolve().parents[2]
NAMED_TOPIC = re.compile(r"topic_named\(\s*\"([^\"]+)\"\s*\)|\"(amiflow\.[a-z.-]+)\"")


def _topics_named_in(path: Path) -> set[str]:
    found = {a or b for a, b in NAMED_TOPIC.findall(path.read_text())}
    return {t for t in found if not t.startswith("amiflow.dlq.")}


def _source(service: Service, module: str) -> Path:
    return ROOT / "services" / service.name / service.name / module


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_the_worker_reads_exactly_the_topics_its_main_module_names(service: Service) -> None:
    assert set(service.reads) == _topics_named_in(_source(service, "main.py"))


def test_billing_rebuild_reads_without_a_group_what_the_catalog_grants() -> None:
    billing = next(s for s in SERVICES if s.name == "billing")
    assert set(billing.reads_without_group) == _topics_named_in(_source(billing, "rebuild.py"))


@pytest.mark.parametrize("service", [s for s in SERVICES if s.name in ("ingest", "commands")], ids=lambda s: s.name)
def test_plain_consumer_groups_are_the_subscriptions_of_main(service: Service) -> None:
    groups = set(re.findall(r"Subscription\(\s*\"([^\"]+)\"", _source(service, "main.py").read_text()))
    assert {c.group for c in service.consumers} == groups


def test_configured_consumer_groups_are_the_settings_defaults() -> None:
    # The manifests set these explicitly; the ACLs grant exactly them.
    groups = {s.name: [c.group for c in s.consumers] for s in SERVICES}
    assert groups["vee"] == [VeeSettings().faust_app_id]
    assert groups["billing"] == [BillingSettings().faust_app_id]
    assert groups["notify"] == [NotifySettings().consumer_group]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_a_service_writes_every_topic_the_registry_says_it_produces(service: Service) -> None:
    produced = {t.name for t in TOPICS if t.producer in (service.name, EVERY_SERVICE)}
    assert produced <= set(service.writes)


def test_every_topic_has_a_writer_and_every_written_topic_exists() -> None:
    registered = {t.name for t in TOPICS}
    written = {t for s in SERVICES for t in s.writes}
    assert written <= registered
    assert registered <= written


def test_the_console_forwards_to_every_api_at_the_port_the_catalog_gives_it() -> None:
    assert CONSOLE.api_port == ConsoleSettings.default_api_port
    assert {name: service_named(name).api_port for name in CONSOLE.upstreams} == UPSTREAM_PORTS
    assert {name: service_named(name).api_port for name in UPSTREAM_PORTS} == UPSTREAM_PORTS


def test_the_console_uses_neither_kafka_nor_a_database() -> None:
    # Why the catalog gives it no KafkaUser, no Database and no worker: its code has no client of either.
    assert CONSOLE.name not in {s.name for s in SERVICES}
    assert not [t.name for t in TOPICS if t.producer == CONSOLE.name]
    sources = "\n".join(p.read_text() for p in (ROOT / "services" / "console" / "console").glob("*.py"))
    assert sources, "the console's package is where the catalog says"
    assert not re.findall(r"^\s*(?:from|import)\s+(aiokafka|faust|sqlalchemy|asyncpg|alembic)\b", sources, re.M)
    assert "database_url" not in sources and "Subscription" not in sources
