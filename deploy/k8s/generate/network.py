"""Who may talk to whom: default deny, then per process exactly its peers; the Ingress of the APIs.
(The console's policy and Ingress are in console.py; the APIs' side of it, admitting the console, is here.)"""

from __future__ import annotations

from typing import Any

from deploy.k8s.generate.catalog import (
    CONSOLE,
    KAFKA_CLUSTER,
    KAFKA_TLS_PORT,
    OTEL_COLLECTOR_NAMESPACE,
    OTLP_HTTP_PORT,
    POSTGRES_CLUSTER,
    SERVICES,
    Service,
)
from deploy.k8s.generate.workloads import GATEWAY_PORT, PART_OF, labels, selector

# Namespaces of the ingress controller and of Prometheus (the overlays patch them to the cluster's own).
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
IDENTITY_PORT = 8006


def namespace_peer(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


DNS = {"to": [{**namespace_peer("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
KAFKA = {"to": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": KAFKA_CLUSTER,
                                                 "strimzi.io/broker-role": "true"}}}],
         "ports": _tcp(KAFKA_TLS_PORT)}
POSTGRES = {"to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": POSTGRES_CLUSTER}}}], "ports": _tcp(5432)}
IDENTITY = {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "identity",
                                                    "app.kubernetes.io/component": "api"}}}],
            "ports": _tcp(IDENTITY_PORT)}
# The console's pods, which forward the browser's calls to every API (deploy/k8s/generate/console.py).
CONSOLE_PODS = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": CONSOLE.name,
                                                "app.kubernetes.io/component": "api"}}}
# Any pod of the collector's namespace: the collector's own labels differ between its charts and operator.
OTEL_COLLECTOR = {"to": [namespace_peer(OTEL_COLLECTOR_NAMESPACE)], "ports": _tcp(OTLP_HTTP_PORT)}


def api_peer(service: Service) -> dict[str, Any]:
    """The pods of a service's API (a policy names pods, not the Service in front of them)."""
    return {"podSelector": {"matchLabels": selector(service, "api")}}


def default_deny() -> dict[str, Any]:
    """Every amiflow pod starts with no traffic in or out; the policies below open what each needs."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "amiflow-default-deny", "labels": dict(PART_OF)},
            "spec": {"podSelector": {"matchLabels": dict(PART_OF)}, "policyTypes": ["Ingress", "Egress"]}}


def _ingress_rules(service: Service, role: str) -> list[dict[str, Any]]:
    port = service.api_port if role == "api" else service.ops_port
    rules = [{"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": _tcp(port)}]  # /metrics scrapes
    if role == "api":
        rules.append({"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": _tcp(port)})
        if service.name in CONSOLE.upstreams:
            rules.append({"from": [CONSOLE_PODS], "ports": _tcp(port)})
    if service.name == "identity" and role == "api":  # every API fetches the token keys (JWKS)
        rules.append({"from": [{"podSelector": {"matchLabels": dict(PART_OF)}}], "ports": _tcp(port)})
    if service.name == "ingest" and role == "worker":  # DTUs log in from anywhere on the Internet
        rules.append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                      "ports": _tcp(GATEWAY_PORT)})
    return rules


def _egress_rules(service: Service, role: str) -> list[dict[str, Any]]:
    rules = [DNS, KAFKA, POSTGRES, OTEL_COLLECTOR]
    if role == "api" and service.name != "identity":  # identity checks tokens against its own database
        rules.append(IDENTITY)
    if role == "worker":
        # Providers' addresses are not known in advance: the ports are the limit (an egress gateway is tighter).
        rules += [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}], "ports": _tcp(*ports)}
                  for _, ports in service.worker_egress]
    return rules


def network_policy(service: Service, role: str) -> dict[str, Any]:
    """The peers of one process: who reaches its ports, and what it reaches."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"{service.name}-{role}", "labels": labels(service, role)},
            "spec": {"podSelector": {"matchLabels": selector(service, role)}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": _ingress_rules(service, role), "egress": _egress_rules(service, role)}}


def ingress(host_domain: str = "amiflow.example") -> dict[str, Any]:
    """One host per API: every service serves /v1/audit, /docs and /healthz, so paths cannot tell them apart."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "amiflow-api", "labels": dict(PART_OF),
                     "annotations": {
                         # CSV and registry uploads are larger than JSON calls; the APIs refuse above their own limits.
                         "nginx.ingress.kubernetes.io/proxy-body-size": "32m",
                     }},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [f"{s.name}.{host_domain}" for s in SERVICES], "secretName": "amiflow-api-tls"}],
            "rules": [{"host": f"{s.name}.{host_domain}", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": f"{s.name}-api", "port": {"name": "http"}}},
            }]}} for s in SERVICES],
        },
    }
