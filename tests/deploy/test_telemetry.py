"""Spans leave every process: where OTEL_EXPORTER_OTLP_ENDPOINT is set, the pod's NetworkPolicies let it
resolve the collector's name and reach the collector's port."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlparse

import pytest

from deploy.k8s.generate.catalog import OTEL_COLLECTOR_ENDPOINT
from deploy.k8s.generate.validation import OVERLAYS, named

Rendered = dict[str, list[dict[str, Any]]]
Document = dict[str, Any]
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


def _pods(documents: list[Document]) -> list[tuple[str, Document]]:
    """(workload name, pod template) of every Deployment and CronJob."""
    found = [(d["metadata"]["name"], d["spec"]["template"]) for d in documents if d["kind"] == "Deployment"]
    return found + [(d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"])
                    for d in documents if d["kind"] == "CronJob"]


def _variable(documents: list[Document], container: Document, name: str) -> str | None:
    """The value a container sees for `name`: its env (a value, or a ConfigMap's key), else the last ConfigMap
    of its envFrom that has it."""
    for variable in container.get("env", []):
        if variable["name"] == name:
            reference = variable.get("valueFrom", {}).get("configMapKeyRef")
            if reference:
                found: str | None = named(documents, "ConfigMap", reference["name"]).get("data", {}).get(
                    reference["key"])
                return found
            value: str | None = variable.get("value")
            return value
    value = None
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            value = named(documents, "ConfigMap", source["configMapRef"]["name"]).get("data", {}).get(name, value)
    return value


def _peer_admits(peer: Document, namespace: str, target: dict[str, str], pod_namespace: str) -> bool:
    """Whether a `to` peer certainly includes a pod with labels `target` in `namespace` ({} for labels not ours
    to know, such as the collector's: then only a peer that ignores labels will do)."""
    if "ipBlock" in peer:
        return peer["ipBlock"]["cidr"] in {"0.0.0.0/0", "::/0"} and "except" not in peer["ipBlock"]
    pods = peer.get("podSelector", {})
    if pods.get("matchExpressions") or any(target.get(k) != v for k, v in pods.get("matchLabels", {}).items()):
        return False
    if "namespaceSelector" in peer:
        return bool(peer["namespaceSelector"].get("matchLabels") == {"kubernetes.io/metadata.name": namespace})
    return namespace == pod_namespace


def reaches(documents: list[Document], pod: Document, namespace: str, port: int, protocol: str = "TCP",
            target: dict[str, str] | None = None) -> bool:
    """Whether the NetworkPolicies selecting `pod` allow its egress to `port` of a pod in `namespace`."""
    labels, pod_namespace = pod["metadata"]["labels"], next(
        d["metadata"]["name"] for d in documents if d["kind"] == "Namespace")
    policies = [p for p in documents if p["kind"] == "NetworkPolicy" and "Egress" in p["spec"]["policyTypes"]
                and all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())]
    if not policies:
        return True  # no policy isolates the pod's egress
    return any((not rule.get("ports") or any(p.get("port") == port and p.get("protocol", "TCP") == protocol
                                             for p in rule["ports"]))
               and (not rule.get("to") or any(_peer_admits(peer, namespace, target or {}, pod_namespace)
                                              for peer in rule["to"]))
               for policy in policies for rule in policy["spec"].get("egress", []))


def unreachable_collectors(documents: list[Document]) -> list[str]:
    """Every container whose endpoint is set but whose pod cannot resolve or reach it."""
    found = []
    for workload, pod in _pods(documents):
        for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
            endpoint = _variable(documents, container, ENDPOINT)
            if not endpoint:
                continue
            url = urlparse(endpoint)
            assert url.scheme in {"http", "https"} and url.hostname, f"{workload}: {endpoint} is no OTLP/HTTP URL"
            parts = url.hostname.split(".")
            namespace = parts[1] if len(parts) > 1 else pod["metadata"].get("namespace", "")
            port = url.port or (443 if url.scheme == "https" else 80)
            resolves = reaches(documents, pod, "kube-system", 53, "UDP", target={"k8s-app": "kube-dns"})
            if not (resolves and reaches(documents, pod, namespace, port)):
                found.append(f"{workload}/{container['name']}")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_with_an_endpoint_reaches_the_collector(rendered: Rendered, overlay: str) -> None:
    assert unreachable_collectors(rendered[overlay]) == []


def test_production_exports_spans_to_the_collector_and_development_does_not(rendered: Rendered) -> None:
    assert named(rendered["prod"], "ConfigMap", "amiflow-platform")["data"][ENDPOINT] == OTEL_COLLECTOR_ENDPOINT
    assert ENDPOINT not in named(rendered["dev"], "ConfigMap", "amiflow-platform")["data"]
    prod_processes = [c for _, pod in _pods(rendered["prod"]) for c in pod["spec"]["containers"]
                      if _variable(rendered["prod"], c, ENDPOINT)]
    assert len(prod_processes) == 14, "every API, every worker, the console and the backup job"


def test_a_process_whose_policy_lacks_the_collector_rule_is_reported(rendered: Rendered) -> None:
    documents = copy.deepcopy(rendered["prod"])
    policy = named(documents, "NetworkPolicy", "vee-worker")
    collector_port = {"protocol": "TCP", "port": urlparse(OTEL_COLLECTOR_ENDPOINT).port}
    policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if collector_port not in r["ports"]]
    assert unreachable_collectors(documents) == ["vee-worker/migrate", "vee-worker/worker"]
