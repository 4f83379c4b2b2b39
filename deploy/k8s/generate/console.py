"""The console's resources: one stateless API Deployment serving the web app and forwarding to the APIs.

Unlike a service it has no worker, no database, no Kafka user, no migration and no secret, so it shares the
services' pod conventions (non-root, read-only root, probes, budgets, spread) but not their wiring. People reach
it on a host of its own: the APIs keep one host each for programs, and the console's paths (`/api/…`,
`/assets/…`) would collide with theirs on a shared one.
"""

from __future__ import annotations

import json
from typing import Any

from deploy.k8s.generate.catalog import CONSOLE, Console, service_named
from deploy.k8s.generate.network import (
    DNS,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    OTEL_COLLECTOR,
    api_peer,
    namespace_peer,
)
from deploy.k8s.generate.workloads import PART_OF, RUN_AS_USER

ROLE = "api"  # `python -m console.main api`, its only process: the API Services' conventions apply to it
# What the Ingress sends to the console: the pages, their assets and config, and the proxy. Not /healthz,
# /readyz or /metrics: those are for the kubelet and Prometheus, inside the cluster. tests/deploy checks
# this list against the routes console/app.py serves.
PUBLIC_PATHS = (("/", "Exact"), ("/console", "Prefix"), ("/portal", "Prefix"), ("/assets", "Prefix"),
                ("/api", "Prefix"), ("/console-config.json", "Exact"), ("/favicon.svg", "Exact"))
# A proxy and static files: no database pool, no consumers (about 115 MiB resident after start and a few
# hundred calls, measured). The limit leaves room for up to 200 open upstream connections and streamed
# report downloads (the proxy holds a chunk per open download, not the whole file).
RESOURCES = {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "384Mi"}}


def labels(console: Console = CONSOLE) -> dict[str, str]:
    return {**selector(console), **PART_OF}


def selector(console: Console = CONSOLE) -> dict[str, str]:
    return {"app.kubernetes.io/name": console.name, "app.kubernetes.io/component": ROLE}


def _meta(name: str, console: Console) -> dict[str, Any]:
    return {"name": name, "labels": labels(console)}


def config_map(console: Console = CONSOLE) -> dict[str, Any]:
    """Its own settings: where it listens and each API's in-cluster address. Where the built web app is
    (CONSOLE_WEB_DIST) belongs to the image: the Dockerfile sets it beside the files."""
    p = console.prefix
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"amiflow-{console.name}", console),
            "data": {
                f"{p}API_HOST": "0.0.0.0",  # noqa: S104 - a pod's address; the NetworkPolicy decides who reaches it
                f"{p}API_PORT": str(console.api_port),
                f"{p}UPSTREAMS": json.dumps(console.upstream_urls()),
            }}


def environment(console: Console = CONSOLE) -> list[dict[str, Any]]:
    """The platform settings it reads, each taken from amiflow-platform by name (see Console)."""
    found = []
    for name, optional in console.platform_settings:
        ref: dict[str, Any] = {"name": "amiflow-platform", "key": name}
        if optional:
            ref["optional"] = True
        found.append({"name": name, "valueFrom": {"configMapKeyRef": ref}})
    return found


def _probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "timeoutSeconds": 5, **timing}


def container(console: Console = CONSOLE) -> dict[str, Any]:
    return {
        "name": ROLE, "image": f"amiflow/{console.name}", "args": [ROLE],
        "ports": [{"name": "http", "containerPort": console.api_port}],
        "envFrom": [{"configMapRef": {"name": f"amiflow-{console.name}"}}],
        "env": environment(console),
        # Nothing to connect to before it serves, but importing the web stack takes its time on a busy node
        # (36 s measured under a load of 25 on two cores): liveness waits until it answers once, for 2 min.
        "startupProbe": _probe("/healthz", periodSeconds=5, failureThreshold=24),
        "livenessProbe": _probe("/healthz", periodSeconds=15, failureThreshold=4),
        # Ready once the image holds the built web app: an image built without it is never given traffic.
        "readinessProbe": _probe("/readyz", periodSeconds=10, failureThreshold=3),
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": RESOURCES,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }


def deployment(console: Console = CONSOLE) -> dict[str, Any]:
    """Two replicas (the dev overlay runs one, prod spreads them over nodes like every API)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(f"{console.name}-{ROLE}", console),
            "spec": {
                "replicas": 2,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": selector(console)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels(console)},
                    "spec": {
                        "serviceAccountName": console.name,
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER,
                                            "runAsGroup": RUN_AS_USER, "fsGroup": RUN_AS_USER,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "terminationGracePeriodSeconds": 30,
                        "containers": [container(console)],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                        "topologySpreadConstraints": [{
                            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector(console)},
                        }],
                    },
                },
            }}


def service(console: Console = CONSOLE) -> dict[str, Any]:
    """Named port `http` and component `api`: the ServiceMonitor `amiflow-api` scrapes its /metrics."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(f"{console.name}-{ROLE}", console),
            "spec": {"selector": selector(console),
                     "ports": [{"name": "http", "port": console.api_port, "targetPort": "http"}]}}


def disruption_budget(console: Console = CONSOLE) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(f"{console.name}-{ROLE}", console),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(console)}}}


def network_policy(console: Console = CONSOLE) -> dict[str, Any]:
    """In: the ingress controller and Prometheus. Out: DNS, the APIs it forwards to, and the collector (its
    spans start the trace of every call it forwards). No Kafka, no PostgreSQL, nothing outside the cluster."""
    def port() -> list[dict[str, Any]]:  # a list of its own per rule: shared, YAML would write an alias
        return [{"protocol": "TCP", "port": console.api_port}]

    apis = [{"to": [api_peer(api)], "ports": [{"protocol": "TCP", "port": api.api_port}]}
            for api in map(service_named, console.upstreams)]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(f"{console.name}-{ROLE}", console),
            "spec": {"podSelector": {"matchLabels": selector(console)}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [namespace_peer(MONITORING_NAMESPACE)], "ports": port()},
                                 {"from": [namespace_peer(INGRESS_NAMESPACE)], "ports": port()}],
                     "egress": [DNS, *apis, OTEL_COLLECTOR]}}


def ingress(console: Console = CONSOLE, host_domain: str = "amiflow.example") -> dict[str, Any]:
    """The people's host: operators at /console/, customers at /portal/. The overlays set the host name."""
    def backend() -> dict[str, Any]:  # one per path: a shared dict would become a YAML alias
        return {"service": {"name": f"{console.name}-{ROLE}", "port": {"name": "http"}}}

    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": f"amiflow-{console.name}", "labels": labels(console),
                     "annotations": {
                         # Uploads (meter registries, readings as CSV) pass through the console's proxy to the APIs.
                         "nginx.ingress.kubernetes.io/proxy-body-size": "32m",
                         # A browser keeps to one pod: during a rollout its page and the hashed assets the page
                         # names come from the same release (a new page asking an old pod gets a 404). Path /:
                         # the pages, /assets and /api are separate locations and must share the cookie.
                         "nginx.ingress.kubernetes.io/affinity": "cookie",
                         "nginx.ingress.kubernetes.io/session-cookie-name": "amiflow-console-pod",
                         "nginx.ingress.kubernetes.io/session-cookie-path": "/",
                     }},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host_domain], "secretName": f"amiflow-{console.name}-tls"}],
            "rules": [{"host": host_domain, "http": {"paths": [
                {"path": path, "pathType": kind, "backend": backend()} for path, kind in PUBLIC_PATHS]}}],
        },
    }


def resources(console: Console = CONSOLE) -> list[dict[str, Any]]:
    """The file services/console.yaml of the base (the Ingress goes to ingress.yaml with the APIs')."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(console.name, console),
               "automountServiceAccountToken": False}
    return [account, config_map(console), deployment(console), disruption_budget(console), network_policy(console),
            service(console)]
