"""Per service: its API and worker Deployments, Services, ConfigMap, ServiceAccount, PDBs, NetworkPolicies, HPA."""

from __future__ import annotations

from typing import Any

from deploy.k8s.generate.catalog import IMAGE_REPOSITORY, KAFKA_CLUSTER, POSTGRES_CLUSTER, Service
from deploy.k8s.generate.postgres import database_secret

GATEWAY_PORT = 9100  # INGEST_GATEWAY_PORT
RUN_AS_USER = 10001  # the Dockerfile's numeric USER
DATA_DIR = "/var/lib/amiflow"  # AMIFLOW_DATA_DIR: Faust's folder; the root file system is read-only
KAFKA_CA_DIR = "/etc/amiflow/kafka-ca"
POSTGRES_CA_DIR = "/etc/amiflow/postgres-ca"
PART_OF = {"app.kubernetes.io/part-of": "amiflow"}
# Faust workers wait up to KAFKA_CONNECT_TIMEOUT_S (300 s) for the broker before they serve /healthz.
STARTUP_SECONDS = 360
RESOURCES = {
    "api": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "worker": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "migrate": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
}


def labels(service: Service, role: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service.name, "app.kubernetes.io/component": role, **PART_OF}


def selector(service: Service, role: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service.name, "app.kubernetes.io/component": role}


def _meta(name: str, service: Service, role: str | None = None) -> dict[str, Any]:
    found = labels(service, role) if role else {"app.kubernetes.io/name": service.name, **PART_OF}
    return {"name": name, "labels": found}


def config_map(service: Service) -> dict[str, Any]:
    """The service's own settings, named exactly as its pydantic settings read them."""
    p = service.prefix
    data = {
        f"{p}API_HOST": "0.0.0.0",  # noqa: S104 - a pod's address; the NetworkPolicy decides who reaches it
        f"{p}API_PORT": str(service.api_port),
        f"{p}OPS_PORT": str(service.ops_port),
        # No credentials in the URL: asyncpg reads PGUSER / PGPASSWORD from the role's secret, and checks
        # the server's certificate against the cluster's CA (PGSSLMODE, PGSSLROOTCERT in amiflow-platform).
        f"{p}DATABASE_URL": f"postgresql+asyncpg://{POSTGRES_CLUSTER}-rw:5432/{service.name}",
        "KAFKA_SASL_USERNAME": service.kafka_user,
        **dict(service.settings),
    }
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"amiflow-{service.name}", service),
            "data": data}


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def environment(service: Service) -> list[dict[str, Any]]:
    """Secrets as variables; everything else comes from the ConfigMaps."""
    return [
        _secret_env("KAFKA_SASL_PASSWORD", service.kafka_user, "password"),  # written by Strimzi's User Operator
        _secret_env("PGUSER", database_secret(service), "username"),
        _secret_env("PGPASSWORD", database_secret(service), "password"),
        *(_secret_env(*secret) for secret in service.secrets),
    ]


def _probe(path: str, port: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "timeoutSeconds": 5, **timing}


def container(service: Service, role: str) -> dict[str, Any]:
    """One process of the service: `python -m <service>.main <role>` (the image's entrypoint)."""
    port_name = "http" if role == "api" else "ops"
    ports = [{"name": port_name, "containerPort": service.api_port if role == "api" else service.ops_port}]
    if service.name == "ingest" and role == "worker":
        ports.append({"name": "dtu", "containerPort": GATEWAY_PORT})
    return {
        "name": role, "image": f"{IMAGE_REPOSITORY}/{service.name}", "args": [role],
        "ports": ports,
        "envFrom": [{"configMapRef": {"name": "amiflow-platform"}},
                    {"configMapRef": {"name": f"amiflow-{service.name}"}}],
        "env": environment(service),
        "startupProbe": _probe("/healthz", port_name, periodSeconds=10, failureThreshold=STARTUP_SECONDS // 10),
        "livenessProbe": _probe("/healthz", port_name, periodSeconds=15, failureThreshold=4),
        # Not ready while its database, Kafka or a consumer is failing: traffic and rollouts wait.
        "readinessProbe": _probe("/readyz", port_name, periodSeconds=10, failureThreshold=3),
        # Endpoints are removed asynchronously: keep serving a moment before uvicorn's graceful stop.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": RESOURCES[role],
        "securityContext": _container_security(),
        "volumeMounts": _mounts(),
    }


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER, "capabilities": {"drop": ["ALL"]}}


def _mounts() -> list[dict[str, Any]]:
    return [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": DATA_DIR},  # noqa: S108
            {"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True},
            {"name": "postgres-ca", "mountPath": POSTGRES_CA_DIR, "readOnly": True}]


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "kafka-ca", "secret": {"secretName": f"{KAFKA_CLUSTER}-cluster-ca-cert",
                                        "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"name": "postgres-ca", "secret": {"secretName": f"{POSTGRES_CLUSTER}-ca",
                                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    ]


def migrate_container(service: Service) -> dict[str, Any]:
    """Migrations before the process starts: a failed migration stops the rollout visibly (Init:Error).
    Alembic runs under an advisory lock, so API and worker pods starting together migrate once."""
    main = container(service, "api")
    return {"name": "migrate", "image": main["image"], "args": ["migrate"], "envFrom": main["envFrom"],
            "env": main["env"], "resources": RESOURCES["migrate"], "securityContext": _container_security(),
            "volumeMounts": _mounts()}


def deployment(service: Service, role: str) -> dict[str, Any]:
    """The API or worker Deployment; a worker with an HPA leaves its replica count to the HPA."""
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(service, role)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": labels(service, role)},
            "spec": {
                "serviceAccountName": service.name,
                "automountServiceAccountToken": False,  # no process talks to the Kubernetes API
                "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                                    "fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
                "terminationGracePeriodSeconds": 30 if role == "api" else 60,
                "initContainers": [migrate_container(service)],
                "containers": [container(service, role)],
                "volumes": _volumes(),
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector(service, role)},
                }],
            },
        },
    }
    if role == "api" or not service.worker_scales:
        spec = {"replicas": 2 if role == "api" else 1, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(f"{service.name}-{role}", service, role),
            "spec": spec}


def services(service: Service) -> list[dict[str, Any]]:
    """ClusterIP Services of the API and of the worker's ops port (what a ServiceMonitor selects)."""
    found = [{
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(f"{service.name}-{role}", service, role),
        "spec": {"selector": selector(service, role),
                 "ports": [{"name": name, "port": port, "targetPort": name}]},
    } for role, name, port in (("api", "http", service.api_port), ("worker", "ops", service.ops_port))]
    if service.name == "ingest":
        found.append(gateway_service(service))
    return found


def gateway_service(service: Service) -> dict[str, Any]:
    """The DTU port behind a load balancer. Local traffic policy keeps the DTU's own address (the gateway
    caps sockets per address, and its refusals name it), at the price of nodes without a worker failing
    the balancer's health check and getting no connections."""
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta("ingest-gateway", service, "worker"),
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                 "selector": selector(service, "worker"),
                 "ports": [{"name": "dtu", "port": GATEWAY_PORT, "targetPort": "dtu", "protocol": "TCP"}]},
    }


def disruption_budget(service: Service, role: str) -> dict[str, Any]:
    budget = {"minAvailable": 1} if role == "api" else {"maxUnavailable": 1}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(f"{service.name}-{role}", service, role),
            "spec": {**budget, "selector": {"matchLabels": selector(service, role)}}}


def autoscaler(service: Service) -> dict[str, Any]:
    """CPU-driven, never above the partitions the worker consumes; scale-down is slow because every change
    rebalances the consumer groups (a Faust worker pauses for its session timeout)."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(f"{service.name}-worker", service, "worker"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{service.name}-worker"},
            "minReplicas": min(2, service.max_worker_replicas),
            "maxReplicas": service.max_worker_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
                         "scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 120}]}},
        },
    }


def service_account(service: Service) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(service.name, service),
            "automountServiceAccountToken": False}
