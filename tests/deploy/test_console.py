"""The console in the cluster: an unprivileged stateless Deployment that the ingress controller reaches on a host of
its own, that reaches the six APIs (and they admit it) and nothing else, and that has no Kafka user or database."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from console.app import build_app
from console.config import UPSTREAM_PORTS, ConsoleSettings

from deploy.k8s.generate.catalog import CONSOLE, KAFKA_TLS_PORT, OTLP_HTTP_PORT, SERVICES, service_named
from deploy.k8s.generate.validation import OVERLAYS, named

Rendered = dict[str, list[dict[str, Any]]]
Document = dict[str, Any]
OPS_ROUTES = {"/healthz", "/readyz", "/metrics"}  # for the kubelet and Prometheus, not the Internet


def _pod(documents: list[Document], deployment: str) -> Document:
    template: Document = named(documents, "Deployment", deployment)["spec"]["template"]
    return template


def _namespace(documents: list[Document]) -> str:
    return str(next(d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"))


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _peer_includes(peer: Document, labels: dict[str, str], namespace: str, own_namespace: str) -> bool:
    """Whether a policy peer includes a pod with `labels` in `namespace` (ipBlocks never match a pod here:
    the rules under test name pods)."""
    if "ipBlock" in peer:
        return False
    if not _selects(peer.get("podSelector", {}).get("matchLabels", {}), labels):
        return False
    if "namespaceSelector" in peer:
        return bool(peer["namespaceSelector"].get("matchLabels") == {"kubernetes.io/metadata.name": namespace})
    return namespace == own_namespace


def allowed(documents: list[Document], pod: dict[str, str], direction: str, peer: dict[str, str], peer_namespace: str,
            port: int) -> bool:
    """Whether the NetworkPolicies selecting the pod with labels `pod` allow traffic to (Egress) or from
    (Ingress) a pod with labels `peer` in `peer_namespace` on TCP `port`."""
    own = _namespace(documents)
    policies = [p for p in documents if p["kind"] == "NetworkPolicy" and direction in p["spec"]["policyTypes"]
                and _selects(p["spec"]["podSelector"].get("matchLabels", {}), pod)]
    if not policies:
        return True
    key, side = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any((not rule.get("ports") or {"protocol": "TCP", "port": port} in rule["ports"])
               and (not rule.get(side) or any(_peer_includes(p, peer, peer_namespace, own) for p in rule[side]))
               for policy in policies for rule in policy["spec"].get(key, []))


def _console_labels(documents: list[Document]) -> dict[str, str]:
    labels: dict[str, str] = _pod(documents, "console-api")["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_runs_unprivileged_with_probes_and_resources(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    deployment = named(docs, "Deployment", "console-api")
    assert deployment["spec"]["replicas"] == (2 if overlay == "prod" else 1)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == CONSOLE.name and pod["automountServiceAccountToken"] is False
    named(docs, "ServiceAccount", CONSOLE.name)
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
    assert "initContainers" not in pod, "nothing to migrate"
    (main,) = pod["containers"]
    assert main["args"] == ["api"] and main["image"].split(":")[0].endswith(f"amiflow/{CONSOLE.name}")
    assert [p["name"] for p in main["ports"]] == ["http"]
    assert main["startupProbe"]["httpGet"] == main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"cpu", "memory"} <= set(main["resources"]["requests"]) and "memory" in main["resources"]["limits"]
    security = main["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] > 0 and security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    # It holds no secret: nothing it reads comes from one.
    text = json.dumps(pod)
    assert "secretKeyRef" not in text and '"secret"' not in text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_has_a_budget_a_service_and_its_own_policy(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    labels = _console_labels(docs)
    (budget,) = [b for b in docs if b["kind"] == "PodDisruptionBudget"
                 and _selects(b["spec"]["selector"]["matchLabels"], labels)]
    # Prod keeps one of its two replicas through a drain; dev's single replica may go (else no drain finishes).
    if overlay == "prod":
        assert budget["spec"]["minAvailable"] == 1
    else:
        assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    policies = {p["metadata"]["name"] for p in docs if p["kind"] == "NetworkPolicy"
                and _selects(p["spec"]["podSelector"]["matchLabels"], labels)}
    assert policies == {"amiflow-default-deny", "console-api"}
    service = named(docs, "Service", "console-api")["spec"]
    assert _selects(service["selector"], labels)
    assert service["ports"] == [{"name": "http", "port": CONSOLE.api_port, "targetPort": "http"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_its_upstreams_are_the_api_services_in_the_cluster(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    upstreams = json.loads(named(docs, "ConfigMap", "amiflow-console")["data"]["CONSOLE_UPSTREAMS"])
    assert set(upstreams) == set(UPSTREAM_PORTS)
    for name, url in upstreams.items():
        address = urlparse(url)
        assert address.scheme == "http" and not address.path, url
        # A Service of this namespace (no namespace in the name: the overlays choose it), in front of the API.
        service = named(docs, "Service", str(address.hostname))["spec"]
        assert _selects(service["selector"], _pod(docs, f"{name}-api")["metadata"]["labels"]), url
        assert {"name": "http", "port": address.port, "targetPort": "http"} in service["ports"], url


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_and_every_api_let_each_other_talk_and_nothing_else_reaches_out(rendered: Rendered,
                                                                                   overlay: str) -> None:
    docs = rendered[overlay]
    namespace, console = _namespace(docs), _console_labels(docs)
    for service in SERVICES:
        api = _pod(docs, f"{service.name}-api")["metadata"]["labels"]
        assert allowed(docs, console, "Egress", api, namespace, service.api_port), f"console -> {service.name}"
        assert allowed(docs, api, "Ingress", console, namespace, service.api_port), f"{service.name} admits it"
        worker = _pod(docs, f"{service.name}-worker")["metadata"]["labels"]
        assert not allowed(docs, console, "Egress", worker, namespace, service.ops_port), "workers are not its peers"
    brokers = {"strimzi.io/cluster": "amiflow", "strimzi.io/broker-role": "true"}
    assert not allowed(docs, console, "Egress", brokers, namespace, KAFKA_TLS_PORT)
    assert not allowed(docs, console, "Egress", {"cnpg.io/cluster": "amiflow-pg"}, namespace, 5432)
    policy = named(docs, "NetworkPolicy", "console-api")["spec"]
    assert not [peer for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer], "nothing outside"
    ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {53, OTLP_HTTP_PORT} | {service_named(name).api_port for name in CONSOLE.upstreams}


def test_the_console_is_reached_from_the_ingress_controller_and_prometheus_only(rendered: Rendered) -> None:
    policy = named(rendered["prod"], "NetworkPolicy", "console-api")["spec"]
    sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in policy["ingress"] for peer in rule["from"]}
    assert sources == {"ingress-nginx", "monitoring"}
    assert all(rule["ports"] == [{"protocol": "TCP", "port": CONSOLE.api_port}] for rule in policy["ingress"])


def _routed(paths: list[Document], url: str) -> bool:
    """Kubernetes' path matching: Exact is the whole path, Prefix matches whole path elements."""
    for path in paths:
        wanted = path["path"].rstrip("/")
        if path["pathType"] == "Exact" and url == path["path"]:
            return True
        if path["pathType"] == "Prefix" and (url == wanted or url.startswith(f"{wanted}/") or wanted == ""):
            return True
    return False


def _route_paths(routes: list[Any], prefix: str = "") -> list[str]:
    """Every path template the app serves, into included routers (FastAPI keeps them as routers of their own)."""
    found = []
    for route in routes:
        if isinstance(getattr(route, "path", None), str):
            found.append(prefix + route.path)
        elif hasattr(route, "original_router"):
            found += _route_paths(route.original_router.routes, prefix + route.include_context.prefix)
        else:
            raise TypeError(f"cannot read the path of {route!r}: teach _route_paths this FastAPI's routes")
    return found


def _sample(route: str) -> str:
    """A concrete URL of a route template: `{rest:path}` as two elements, `{name}` as one."""
    return re.sub(r"\{[a-z_]+\}", "x", re.sub(r"\{[a-z_]+:path\}", "a/b.js", route))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_host_routes_every_page_asset_and_the_proxy_but_no_ops_route(rendered: Rendered, overlay: str,
                                                                                 tmp_path: Path) -> None:
    ingress = named(rendered[overlay], "Ingress", "amiflow-console")
    (rule,) = ingress["spec"]["rules"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [rule["host"]] and rule["host"] == (
        "amiflow.example.com" if overlay == "prod" else "amiflow.dev.example")
    paths = rule["http"]["paths"]
    assert {json.dumps(p["backend"]) for p in paths} == {
        json.dumps({"service": {"name": "console-api", "port": {"name": "http"}}})}
    routes = set(_route_paths(build_app(ConsoleSettings(web_dist=tmp_path)).routes))
    assert OPS_ROUTES <= routes and {"/console", "/portal", "/", "/api/{service}/{path:path}"} <= routes
    for route in routes:
        assert _routed(paths, _sample(route)) is (route not in OPS_ROUTES), route
    # ... and the APIs' hosts are still their own (test_workloads checks them rule by rule).
    api_hosts = {r["host"] for r in named(rendered[overlay], "Ingress", "amiflow-api")["spec"]["rules"]}
    assert rule["host"] not in api_hosts and len(api_hosts) == len(SERVICES)
    if overlay == "prod":  # TLS as for the APIs
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"


def test_the_route_reading_refuses_what_kubernetes_would_not_route() -> None:
    paths = [{"path": "/console", "pathType": "Prefix"}, {"path": "/", "pathType": "Exact"}]
    assert _routed(paths, "/console") and _routed(paths, "/console/meters/42") and _routed(paths, "/")
    assert not _routed(paths, "/console-config.json") and not _routed(paths, "/metrics")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_has_no_kafka_user_database_or_role(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    mine = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
            if d["kind"] in ("KafkaUser", "Database", "HorizontalPodAutoscaler")
            and d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == CONSOLE.name]
    assert mine == []
    roles = {r["name"] for r in named(docs, "Cluster", "amiflow-pg")["spec"]["managed"]["roles"]}
    assert CONSOLE.name not in roles
    assert not [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "console-worker"]
