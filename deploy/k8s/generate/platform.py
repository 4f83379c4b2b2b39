"""What every service shares: the namespace and the platform-wide settings (unprefixed names)."""

from __future__ import annotations

from typing import Any

from deploy.k8s.generate.catalog import KAFKA_CLUSTER, KAFKA_TLS_PORT, NAMESPACE, OTEL_COLLECTOR_ENDPOINT
from deploy.k8s.generate.workloads import DATA_DIR, KAFKA_CA_DIR, PART_OF, POSTGRES_CA_DIR


def namespace() -> dict[str, Any]:
    # Baseline enforced, restricted reported: amiflow's pods meet restricted; the operators' may not all.
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {
                **PART_OF, "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"}}}


def platform_config() -> dict[str, Any]:
    """Settings every service reads under the same name (amiflow_runtime.config.ServiceSettings)."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "amiflow-platform", "labels": dict(PART_OF)},
        "data": {
            "AMIFLOW_ENV": "production",
            "AMIFLOW_DATA_DIR": DATA_DIR,
            "KAFKA_BOOTSTRAP_SERVERS": f"{KAFKA_CLUSTER}-kafka-bootstrap:{KAFKA_TLS_PORT}",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SSL_CAFILE": f"{KAFKA_CA_DIR}/ca.crt",
            "AMIFLOW_AUTH_JWKS_URL": "http://identity-api:8006/.well-known/jwks.json",
            # Every call arrives through the ingress controller, and the browser's through the console as well:
            # without their addresses here, the login throttle would count all callers as one address. Narrow
            # it to the pod network of the controller and the console per cluster.
            "AMIFLOW_TRUSTED_PROXIES": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
            "AMIFLOW_TIME_ZONE": "Asia/Shanghai",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            # Spans over OTLP/HTTP (the runtime appends /v1/traces); unset, a process keeps no exporter.
            "OTEL_EXPORTER_OTLP_ENDPOINT": OTEL_COLLECTOR_ENDPOINT,
            # Read by asyncpg, not by the settings: the server certificate must be the cluster's.
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": f"{POSTGRES_CA_DIR}/ca.crt",
        },
    }
