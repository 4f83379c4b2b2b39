"""What a platform team checks before production: probes, budgets, policies, scaling bounds, Kafka and
PostgreSQL access per service, the ingress and the DTU port."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
from amiflow_schemas.topics import topic_named

from deploy.k8s.generate.catalog import OTLP_HTTP_PORT, SERVICES, Service
from deploy.k8s.generate.validation import K8S_DIR, OVERLAYS, named

Rendered = dict[str, list[dict[str, Any]]]
ROLES = ("api", "worker")
CASES = [(o, s) for o in OVERLAYS for s in SERVICES]
IDS = [f"{o}-{s.name}" for o, s in CASES]


def _of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize(("overlay", "service"), CASES, ids=IDS)
def test_each_process_has_probes_resources_and_runs_unprivileged(rendered: Rendered, overlay: str,
                                                                 service: Service) -> None:
    docs = rendered[overlay]
    for role in ROLES:
        pod = named(docs, "Deployment", f"{service.name}-{role}")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == service.name
        named(docs, "ServiceAccount", service.name)
        assert [c["args"] for c in pod["initContainers"]] == [["migrate"]]
        (main,) = pod["containers"]
        assert main["args"] == [role]
        port_names = {p["name"] for p in main["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"]["port"] in port_names, probe
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for container in [main, *pod["initContainers"]]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            security = container["securityContext"]
            assert security["runAsNonRoot"] and security["runAsUser"] > 0
            assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]


@pytest.mark.parametrize(("overlay", "service"), CASES, ids=IDS)
def test_each_process_has_a_disruption_budget_and_a_network_policy(rendered: Rendered, overlay: str,
                                                                   service: Service) -> None:
    docs = rendered[overlay]
    for role in ROLES:
        labels = _pod_labels(named(docs, "Deployment", f"{service.name}-{role}"))
        budgets = [b for b in _of_kind(docs, "PodDisruptionBudget")
                   if _selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(budgets) == 1, role
        policies = [p for p in _of_kind(docs, "NetworkPolicy")
                    if _selects(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert {p["metadata"]["name"] for p in policies} == {"amiflow-default-deny", f"{service.name}-{role}"}


def _egress_ports(policy: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_workers_reach_only_kafka_postgres_dns_the_collector_and_what_they_call(rendered: Rendered,
                                                                               service: Service) -> None:
    policy = named(rendered["prod"], "NetworkPolicy", f"{service.name}-worker")
    called = {port for _, ports in service.worker_egress for port in ports}
    assert _egress_ports(policy) == {53, 9093, 5432, OTLP_HTTP_PORT} | called


def test_apis_are_reached_from_the_ingress_controller_and_the_dtu_port_from_anywhere(rendered: Rendered) -> None:
    docs = rendered["prod"]
    for service in SERVICES:
        sources = [peer for rule in named(docs, "NetworkPolicy", f"{service.name}-api")["spec"]["ingress"]
                   for peer in rule["from"]]
        assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in sources
    dtu = [rule for rule in named(docs, "NetworkPolicy", "ingest-worker")["spec"]["ingress"]
           if {"protocol": "TCP", "port": 9100} in rule["ports"]]
    assert dtu and {"ipBlock": {"cidr": "0.0.0.0/0"}} in dtu[0]["from"]


@pytest.mark.parametrize(("overlay", "service"), CASES, ids=IDS)
def test_worker_autoscaling_never_exceeds_the_partitions_it_consumes(rendered: Rendered, overlay: str,
                                                                     service: Service) -> None:
    docs = rendered[overlay]
    worker = named(docs, "Deployment", f"{service.name}-worker")
    scalers = [h for h in _of_kind(docs, "HorizontalPodAutoscaler")
               if h["spec"]["scaleTargetRef"]["name"] == f"{service.name}-worker"]
    if not service.consumers:  # identity consumes nothing: one replica, no autoscaler
        assert scalers == [] and worker["spec"]["replicas"] == 1
        return
    (scaler,) = scalers
    partitions = max(topic_named(t).partitions for c in service.consumers for t in c.topics)
    assert 1 <= scaler["spec"]["minReplicas"] <= scaler["spec"]["maxReplicas"] <= partitions
    assert "replicas" not in worker["spec"], "a fixed replica count fights the autoscaler on every apply"


@pytest.mark.parametrize(("overlay", "service"), CASES, ids=IDS)
def test_each_service_connects_as_its_own_kafka_user_to_its_own_database(rendered: Rendered, overlay: str,
                                                                         service: Service) -> None:
    docs = rendered[overlay]
    config = named(docs, "ConfigMap", f"amiflow-{service.name}")["data"]
    user = named(docs, "KafkaUser", config["KAFKA_SASL_USERNAME"])
    assert user["metadata"]["labels"]["app.kubernetes.io/name"] == service.name
    container = named(docs, "Deployment", f"{service.name}-worker")["spec"]["template"]["spec"]["containers"][0]
    secrets = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"]}
    assert secrets["KAFKA_SASL_PASSWORD"] == {"name": user["metadata"]["name"], "key": "password"}
    database = urlparse(config[f"{service.prefix}DATABASE_URL"]).path.lstrip("/")
    resource = named(docs, "Database", f"amiflow-{service.name}")["spec"]
    assert (resource["name"], resource["owner"]) == (database, service.name)
    roles = {r["name"]: r for r in named(docs, "Cluster", "amiflow-pg")["spec"]["managed"]["roles"]}
    assert roles[service.name]["passwordSecret"]["name"] == secrets["PGPASSWORD"]["name"] == secrets["PGUSER"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_acls_name_only_existing_topics_and_the_groups_the_services_use(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    topics = {t["spec"]["topicName"] for t in _of_kind(docs, "KafkaTopic")}
    for service in SERVICES:
        acls = named(docs, "KafkaUser", service.kafka_user)["spec"]["authorization"]["acls"]
        by_type: dict[str, set[str]] = {}
        for acl in acls:
            assert acl["resource"]["patternType"] == "literal"
            assert set(acl["operations"]) <= {"Read", "Write"}, "no Create, Alter or All for a service"
            by_type.setdefault(acl["resource"]["type"], set()).add(acl["resource"]["name"])
        assert by_type.get("topic", set()) <= topics
        assert by_type.get("group", set()) == {c.group for c in service.consumers}
        written = {a["resource"]["name"] for a in acls if "Write" in a["operations"]}
        assert written == set(service.writes)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_a_host_to_each_api_and_the_dtu_port_is_a_load_balancer(rendered: Rendered,
                                                                                   overlay: str) -> None:
    docs = rendered[overlay]
    rules = named(docs, "Ingress", "amiflow-api")["spec"]["rules"]
    backends = {r["host"].split(".")[0]: r["http"]["paths"][0]["backend"]["service"] for r in rules}
    assert backends == {s.name: {"name": f"{s.name}-api", "port": {"name": "http"}} for s in SERVICES}
    for service in SERVICES:
        ports = named(docs, "Service", f"{service.name}-api")["spec"]["ports"]
        assert [p["targetPort"] for p in ports] == ["http"]
    gateway = named(docs, "Service", "ingest-gateway")["spec"]
    assert gateway["type"] == "LoadBalancer" and gateway["externalTrafficPolicy"] == "Local"
    worker = named(docs, "Deployment", "ingest-worker")
    assert _selects(gateway["selector"], _pod_labels(worker))
    dtu_port = {p["name"]: p["containerPort"] for p in worker["spec"]["template"]["spec"]["containers"][0]["ports"]}
    config = named(docs, "ConfigMap", "amiflow-ingest")["data"]
    assert gateway["ports"][0]["targetPort"] == "dtu" and dtu_port["dtu"] == int(config["INGEST_GATEWAY_PORT"])


def _secret_references(documents: list[dict[str, Any]]) -> dict[str, bool]:
    """Secret name -> optional, for every secret a pod reads (variables and volumes)."""
    found: dict[str, bool] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                found[ref["name"]] = found.get(ref["name"], True) and bool(ref.get("optional"))
            if "secretName" in node:
                found[node["secretName"]] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for document in documents:
        if document["kind"] in ("Deployment", "CronJob"):
            visit(document["spec"])
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_a_pod_needs_is_made_by_an_operator_or_by_create_secrets(rendered: Rendered,
                                                                             overlay: str) -> None:
    docs = rendered[overlay]
    script = (K8S_DIR / "create-secrets.sh").read_text()
    services_in_script = re.search(r"^services=\(([^)]*)\)", script, re.M)
    assert services_in_script
    made_by_script = {f"amiflow-db-{s}" for s in services_in_script.group(1).split()} | set(
        re.findall(r"create secret generic (amiflow-[a-z-]+)", script))
    made_by_operators = {u["metadata"]["name"] for u in _of_kind(docs, "KafkaUser")} | {
        "amiflow-cluster-ca-cert", "amiflow-pg-ca"}
    for secret, optional in _secret_references(docs).items():
        if optional:
            assert secret in script, f"{secret}: an optional secret is documented in create-secrets.sh"
        else:
            assert secret in made_by_script | made_by_operators, f"nothing makes the secret {secret}"
