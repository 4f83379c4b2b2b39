"""The manifests' variables are the services' settings, by name, and start each process in production."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from amiflow_runtime.config import Environment, ServiceSettings
from billing.config import BillingSettings
from commands.config import CommandsSettings
from console.config import ConsoleSettings
from identity.config import IdentitySettings
from ingest.config import IngestSettings
from notify.config import NotifySettings
from pydantic import AliasChoices
from vee.config import VeeSettings

from deploy.k8s.generate.catalog import CONSOLE, SERVICES
from deploy.k8s.generate.validation import OVERLAYS

Rendered = dict[str, list[dict[str, Any]]]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings, "vee": VeeSettings, "billing": BillingSettings, "commands": CommandsSettings,
    "notify": NotifySettings, "identity": IdentitySettings, "console": ConsoleSettings,
}
# Read by the PostgreSQL driver (asyncpg), not by the settings: the credentials stay out of the URL.
DRIVER_VARIABLES = {"PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT"}
# Settings a pod cannot do without even though the class has a default: the default suits a laptop.
REQUIRED_IN_A_POD = ("DATABASE_URL", "API_HOST")
SECRET_VALUE = base64.urlsafe_b64encode(bytes(range(32))).decode()  # not a placeholder, a valid key


def setting_names(settings: type[ServiceSettings]) -> set[str]:
    """Every environment variable the settings class reads, spelt as it reads it."""
    prefix = settings.model_config.get("env_prefix", "")
    names = set()
    for field, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field}".upper())
    return names


def _service_of(container: dict[str, Any]) -> str:
    return container["image"].rsplit("/", 1)[-1].split(":")[0]


def _containers(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in documents if d["kind"] == "Deployment"]
    return [(f"{name}/{c['name']}", c) for name, pod in pods
            for c in [*pod.get("initContainers", []), *pod["containers"]]]


def resolved_environment(documents: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's variables as the kubelet sets them: ConfigMaps in order, then env; secrets stand-ins;
    optional secrets taken as absent (the worse case); a ConfigMap key that is not there is absent if the
    reference is optional, and stops the pod (here: raises) if it is not."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents if d["kind"] == "ConfigMap"}
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment |= maps[source["configMapRef"]["name"]]
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif (secret := variable["valueFrom"].get("secretKeyRef")) and not secret.get("optional"):
            environment[variable["name"]] = SECRET_VALUE
        elif (config := variable["valueFrom"].get("configMapKeyRef")):
            value = maps[config["name"]].get(config["key"])
            if value is not None:
                environment[variable["name"]] = value
            elif not config.get("optional"):
                raise LookupError(f"{variable['name']}: ConfigMap {config['name']} has no key {config['key']}, "
                                  "and the reference is not optional: the container would not start")
    return environment


def stray_variables(documents: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Container -> the variables it gets that are no setting of its service (nor a driver variable)."""
    strays = {}
    for where, container in _containers(documents):
        names = set(resolved_environment(documents, container)) | {v["name"] for v in container.get("env", [])}
        unknown = names - setting_names(SETTINGS[_service_of(container)]) - DRIVER_VARIABLES
        if unknown:
            strays[where] = sorted(unknown)
    return strays


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_in_the_manifests_is_a_setting_of_its_service(rendered: Rendered, overlay: str) -> None:
    assert stray_variables(rendered[overlay]) == {}


def test_a_misspelt_or_misplaced_variable_is_reported(rendered: Rendered) -> None:
    documents = copy.deepcopy(rendered["prod"])
    billing = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "amiflow-billing")
    billing["data"]["BILLING_SETTLEMENT_INTERVALS"] = "60"  # the setting is BILLING_SETTLEMENT_INTERVAL_S
    vee = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "amiflow-vee")
    vee["data"]["NOTIFY_CONSUMER_GROUP"] = "x"  # another service's setting
    strays = stray_variables(documents)
    assert strays["billing-api/api"] == ["BILLING_SETTLEMENT_INTERVALS"]
    assert strays["vee-worker/worker"] == ["NOTIFY_CONSUMER_GROUP"]
    assert {w.split("/")[0].split("-")[0] for w in strays} == {"billing", "vee"}


def test_driver_variables_are_read_by_asyncpg() -> None:
    source = (Path(asyncpg.__file__).parent / "connect_utils.py").read_text()
    for name in DRIVER_VARIABLES:
        assert re.search(rf"getenv\(\s*['\"]{name}['\"]", source), name


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_the_manifests_settings_start_every_process(rendered: Rendered, overlay: str, service: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings_class = SETTINGS[service]
    for name in setting_names(settings_class) | DRIVER_VARIABLES:  # nothing of the test session's own
        monkeypatch.delenv(name, raising=False)
    for where, container in _containers(rendered[overlay]):
        if _service_of(container) != service:
            continue
        environment = resolved_environment(rendered[overlay], container)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        settings = settings_class()  # refuses placeholders, half-done Kafka security, a missing key
        assert settings.environment is (Environment.DEVELOPMENT if overlay == "dev" else Environment.PRODUCTION)
        missing = [f"{settings_class.model_config['env_prefix']}{n}" for n in REQUIRED_IN_A_POD
                   if f"{settings_class.model_config['env_prefix']}{n}" not in environment]
        assert missing == [], where
        required = [n for n, info in settings_class.model_fields.items() if info.is_required()]
        assert required == [], f"{where}: settings without a default need a manifest entry"
        assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if container["name"] == "api":
            assert ports["http"] == settings.resolved_api_port
        elif container["name"] == "worker":
            assert ports["ops"] == settings.resolved_ops_port
        for name in environment:
            monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_manifests_settings_start_the_console(rendered: Rendered, overlay: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in setting_names(ConsoleSettings) | DRIVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (container,) = [c for _, c in _containers(rendered[overlay]) if _service_of(c) == CONSOLE.name]
    environment = resolved_environment(rendered[overlay], container)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = ConsoleSettings()
    assert settings.environment is (Environment.DEVELOPMENT if overlay == "dev" else Environment.PRODUCTION)
    assert settings.upstreams == CONSOLE.upstream_urls()  # every API named: none falls back to 127.0.0.1
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": settings.resolved_api_port}
    assert settings.api_host == "0.0.0.0"  # a pod's address
    # Pages show local days in the zone the services bucket and settle in: the platform's, not a default.
    platform = next(d for d in rendered[overlay] if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"] == "amiflow-platform")["data"]
    assert settings.time_zone == platform["AMIFLOW_TIME_ZONE"]
    assert settings.otel_exporter_otlp_endpoint == platform.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    # No database and no Kafka: none of their settings reaches it (Kafka's would ask for a user it lacks).
    assert not [n for n in environment if n.startswith(("KAFKA_", "PG")) or n.endswith("DATABASE_URL")]


def test_a_console_reading_a_platform_setting_that_is_not_there_is_reported(rendered: Rendered) -> None:
    documents = copy.deepcopy(rendered["prod"])
    platform = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "amiflow-platform")
    container = next(c for _, c in _containers(documents) if _service_of(c) == CONSOLE.name)
    del platform["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"]  # optional: the dev overlay removes it
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in resolved_environment(documents, container)
    del platform["data"]["AMIFLOW_ENV"]  # required: the kubelet would not start the container
    with pytest.raises(LookupError, match="AMIFLOW_ENV"):
        resolved_environment(documents, container)


def test_identity_without_its_key_in_production_is_refused(rendered: Rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the previous test would catch if the secret reference were dropped from the manifests.
    for name in setting_names(IdentitySettings):
        monkeypatch.delenv(name, raising=False)
    container = next(c for w, c in _containers(rendered["prod"]) if w == "identity-api/api")
    environment = resolved_environment(rendered["prod"], container)
    environment.pop("IDENTITY_KEY_ENCRYPTION_KEY")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="IDENTITY_KEY_ENCRYPTION_KEY"):
        IdentitySettings()


def _job_containers(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    jobs = [(d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for d in documents
            if d["kind"] == "CronJob"]
    return [(f"{name}/{c['name']}", c) for name, pod in jobs for c in pod["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operations_jobs_set_only_settings_and_the_parts_they_are_built_from(rendered: Rendered, overlay: str) -> None:
    # The toolbox (`amiflow backup`) reads every service's settings; a variable that is none of them must
    # be a part spliced into another one ($(NAME), e.g. a password into a database URL).
    every_setting = set().union(*(setting_names(s) for s in SETTINGS.values())) | DRIVER_VARIABLES
    strays = {}
    for where, container in _job_containers(rendered[overlay]):
        env = container.get("env", [])
        spliced = {n for v in env for n in re.findall(r"\$\(([A-Z0-9_]+)\)", v.get("value", ""))}
        names = set(resolved_environment(rendered[overlay], container)) | {v["name"] for v in env}
        if unknown := names - every_setting - spliced:
            strays[where] = sorted(unknown)
        for variable in env:
            for part in re.findall(r"\$\(([A-Z0-9_]+)\)", variable.get("value", "")):
                assert [v["name"] for v in env].index(part) < [v["name"] for v in env].index(variable["name"]), \
                    f"{where}: {part} must come before {variable['name']} to be spliced into it"
    assert strays == {}
    if overlay == "prod":
        assert _job_containers(rendered[overlay]), "production takes nightly backups"
