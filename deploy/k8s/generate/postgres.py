"""CloudNativePG resources: one PostgreSQL cluster, a role and a database per service.

CloudNativePG generates a secret only for the one application database its bootstrap creates. A
database per service in one cluster therefore means a managed role per service whose password the
operator reads from a basic-auth secret `amiflow-db-<service>` that the platform team creates (see
deploy/RUNBOOK.md); the services read the same secret, so rotating it rotates both sides.
"""

from __future__ import annotations

from typing import Any

from deploy.k8s.generate.catalog import POSTGRES_CLUSTER, SERVICES, Service

CNPG_API = "postgresql.cnpg.io/v1"
PART_OF = {"app.kubernetes.io/part-of": "amiflow"}


def database_secret(service: Service) -> str:
    """Name of the basic-auth secret (keys username, password) of the service's database role."""
    return f"amiflow-db-{service.name}"


def cluster() -> dict[str, Any]:
    """Three instances (the dev overlay runs one), a managed login role per service, no superuser access."""
    return {
        "apiVersion": CNPG_API, "kind": "Cluster",
        "metadata": {"name": POSTGRES_CLUSTER, "labels": dict(PART_OF)},
        "spec": {
            "instances": 3,
            "enableSuperuserAccess": False,
            "enablePDB": True,
            "primaryUpdateStrategy": "unsupervised",
            "storage": {"size": "50Gi"},
            "walStorage": {"size": "20Gi"},
            "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
            "postgresql": {"parameters": {
                # Each service process keeps a pool of 10 (+10 overflow): 6 services x 2 roles x replicas.
                "max_connections": "400",
                "shared_buffers": "512MB",
            }},
            "managed": {"roles": [{
                "name": s.name, "ensure": "present", "login": True, "inherit": True,
                "connectionLimit": 100, "passwordSecret": {"name": database_secret(s)},
                "comment": f"amiflow {s.name}: owns database {s.name}",
            } for s in SERVICES]},
            "monitoring": {"enablePodMonitor": False},  # part 2 of issue 10 brings the monitoring stack
        },
    }


def database(service: Service) -> dict[str, Any]:
    """The service's database, owned by its role; kept when the resource is deleted."""
    return {
        "apiVersion": CNPG_API, "kind": "Database",
        "metadata": {"name": f"amiflow-{service.name}", "labels": {"app.kubernetes.io/name": service.name, **PART_OF}},
        "spec": {"cluster": {"name": POSTGRES_CLUSTER}, "name": service.name, "owner": service.name,
                 "ensure": "present", "databaseReclaimPolicy": "retain"},
    }


def resources() -> list[dict[str, Any]]:
    """The cluster and every service's database."""
    return [cluster(), *(database(s) for s in SERVICES)]
