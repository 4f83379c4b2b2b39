"""Every overlay builds with kustomize and every document validates offline against its schema."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest

from deploy.k8s.generate.validation import KUSTOMIZE, OVERLAYS, named, pinned_kustomize_version, schema_errors

Rendered = dict[str, list[dict[str, Any]]]
OPERATOR_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster", "Database"}
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}


def test_kustomize_is_the_pinned_version() -> None:
    done = subprocess.run([str(KUSTOMIZE), "version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == pinned_kustomize_version()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_builds_every_kind_a_platform_needs(rendered: Rendered, overlay: str) -> None:
    kinds = {d["kind"] for d in rendered[overlay]}
    assert kinds >= OPERATOR_KINDS | {"Namespace", "ConfigMap", "ServiceAccount", "Deployment", "Service",
                                      "PodDisruptionBudget", "NetworkPolicy", "HorizontalPodAutoscaler", "Ingress"}
    # The monitoring component: production has the Prometheus Operator, a development cluster need not.
    assert kinds & MONITORING_KINDS == (MONITORING_KINDS if overlay == "prod" else set())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_validates_against_its_schema(rendered: Rendered, overlay: str) -> None:
    refused = {f"{d['kind']}/{d['metadata']['name']}": errors for d in rendered[overlay]
               if (errors := schema_errors(d))}
    assert refused == {}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_document_lands_in_the_overlays_namespace(rendered: Rendered, overlay: str) -> None:
    namespace = named(rendered[overlay], "Namespace", "amiflow-dev" if overlay == "dev" else "amiflow")
    namespaces = {d["metadata"].get("namespace") for d in rendered[overlay] if d["kind"] != "Namespace"}
    assert namespaces == {namespace["metadata"]["name"]}


def _broken(rendered: Rendered, kind: str, name: str, edit: Any) -> dict[str, Any]:
    document = copy.deepcopy(named(rendered["prod"], kind, name))
    edit(document)
    return document


BREAKAGES = {
    "deployment replicas as text": ("Deployment", "vee-api", lambda d: d["spec"].update(replicas="two")),
    "deployment field misspelt": ("Deployment", "vee-api", lambda d: d["spec"].update(replica=2)),
    "probe without a handler field": ("Deployment", "billing-worker", lambda d: d["spec"]["template"]["spec"][
        "containers"][0]["readinessProbe"].update(httpGett={"path": "/readyz"})),
    "network policy with an unknown policy type": ("NetworkPolicy", "notify-worker",
                                                   lambda d: d["spec"].update(policyTypes="Egress")),
    "topic partitions as text": ("KafkaTopic", "amiflow-ingest-readings",
                                 lambda d: d["spec"].update(partitions="twelve")),
    "topic field misspelt": ("KafkaTopic", "amiflow-vee-readings", lambda d: d["spec"].update(partition=12)),
    "user ACL on an unknown resource type": ("KafkaUser", "amiflow-vee", lambda d: d["spec"]["authorization"][
        "acls"][0]["resource"].update(type="schema")),
    "kafka without listeners": ("Kafka", "amiflow", lambda d: d["spec"]["kafka"].pop("listeners")),
    "database without an owner": ("Database", "amiflow-billing", lambda d: d["spec"].pop("owner")),
    "postgres cluster with a misspelt field": ("Cluster", "amiflow-pg", lambda d: d["spec"].update(instance=3)),
    "service monitor endpoint field misspelt": ("ServiceMonitor", "amiflow-api", lambda d: d["spec"]["endpoints"][0]
                                                .update(intervall="30s")),
    "service monitor interval not a duration": ("ServiceMonitor", "amiflow-worker", lambda d: d["spec"]["endpoints"][
        0].update(interval="half a minute")),
    "alert without an expression": ("PrometheusRule", "amiflow", lambda d: d["spec"]["groups"][0]["rules"][0]
                                    .pop("expr")),
    "an unknown kind": ("Deployment", "vee-api", lambda d: d.update(kind="Deploymint")),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_document_is_refused(rendered: Rendered, breakage: str) -> None:
    kind, name, edit = BREAKAGES[breakage]
    assert schema_errors(named(rendered["prod"], kind, name)) == [], "the unbroken document validates"
    assert schema_errors(_broken(rendered, kind, name, edit)) != []
