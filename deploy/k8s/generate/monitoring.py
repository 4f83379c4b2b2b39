"""The optional kustomize component deploy/k8s/components/monitoring: what the Prometheus Operator scrapes,
the alerts it evaluates, and the Grafana dashboard (deploy/grafana/amiflow.json) as a ConfigMap.

A component, not part of the base: a cluster without the Prometheus Operator has no ServiceMonitor or
PrometheusRule kinds and would refuse the whole apply. The prod overlay includes it, dev does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from deploy.k8s.generate.workloads import PART_OF

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "amiflow.json"
# Alertmanager shows runbook_url as a link: point it at the RUNBOOK of the release you run.
RUNBOOK_URL = "https://git.example.com/amiflow/amiflow/-/blob/main/deploy/RUNBOOK.md"
MONITORING_API = "monitoring.coreos.com/v1"
# Metrics the alerts read from kube-state-metrics (part of kube-prometheus-stack), not from amiflow.
KUBE_STATE_METRICS = frozenset({"kube_deployment_status_replicas_unavailable"})
WORKERS = "(ingest|vee|billing|commands|notify|identity)-worker"


def service_monitors() -> list[dict[str, Any]]:
    """APIs on their `http` port, workers on `ops`: one monitor per role selects every service's Service.

    ServiceMonitors rather than PodMonitors: the Services and their named ports exist already, and the
    scrape's `service` label (`vee-api`, `vee-worker`) tells an API's series from its worker's without
    relabelling. ingest-gateway is a worker Service without an `ops` port, so it yields no target. The console's
    Service `console-api` is an API's (component `api`, port `http`): `amiflow-api` scrapes it too.
    """
    return [{
        "apiVersion": MONITORING_API, "kind": "ServiceMonitor",
        "metadata": {"name": f"amiflow-{role}", "labels": {**PART_OF, "app.kubernetes.io/component": role}},
        "spec": {
            "selector": {"matchLabels": {**PART_OF, "app.kubernetes.io/component": role}},
            "endpoints": [{"port": port, "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}],
        },
    } for role, port in (("api", "http"), ("worker", "ops"))]


def _alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description,
                            "runbook_url": f"{RUNBOOK_URL}#{name.lower()}"}}


def alerts() -> list[dict[str, Any]]:
    """The rules of group `amiflow`; each links to its section of deploy/RUNBOOK.md (anchor = lower-case name)."""
    lag = "max by (namespace, consumer, topic, partition) (amiflow_consumer_lag)"
    lag_growth = "max by (namespace, consumer, topic, partition) (deriv(amiflow_consumer_lag[10m]))"
    requests = "sum by (namespace, service) (rate(amiflow_http_requests_total{}[5m]))"
    server_errors = requests.format('{status=~"5.."}')
    pending = "amiflow_outbox_pending"
    return [
        _alert("AmiflowConsumerLagGrowing",
               f"sum by (namespace, consumer) ({lag}) > 1000\nand\nsum by (namespace, consumer) ({lag_growth}) > 0",
               "10m", "warning", "Consumer {{ $labels.consumer }} is falling behind",
               "{{ $labels.consumer }} in {{ $labels.namespace }} is {{ $value }} records behind and the lag has "
               "grown for 10 minutes."),
        _alert("AmiflowEventsDeadLettered",
               "sum by (namespace, service, consumer, reason) (increase(amiflow_events_dead_lettered_total[10m])) > 0",
               "0m", "warning", "{{ $labels.consumer }} dead-lettered records ({{ $labels.reason }})",
               "{{ $labels.consumer }} sent records to its dead-letter topic in the last 10 minutes: "
               "they were not applied and wait for a replay."),
        _alert("AmiflowApiErrors",
               f"{server_errors}\n/\n{requests.format('')}\n> 0.01",
               "5m", "critical", "{{ $labels.service }} answers more than 1 % of requests with 5xx",
               "{{ $labels.service }} in {{ $labels.namespace }}: {{ $value | humanizePercentage }} of requests "
               "failed with a server error over 5 minutes."),
        _alert("AmiflowWorkerNotReady",
               f'kube_deployment_status_replicas_unavailable{{deployment=~"{WORKERS}"}} > 0',
               "10m", "critical", "{{ $labels.deployment }} has pods that are not ready",
               "{{ $value }} pod(s) of {{ $labels.deployment }} in {{ $labels.namespace }} have not been ready "
               "for 10 minutes: its database, Kafka or a consumer is failing (/readyz says which)."),
        # The gauge is the size of the relay's last read, capped at one batch (500): climbing means the relay
        # publishes less than is staged, a full batch every time means it is at least a batch behind.
        _alert("AmiflowOutboxBacklog",
               f"(min_over_time({pending}[10m]) > 0 and deriv({pending}[10m]) > 0)\n"
               f"or\nmin_over_time({pending}[10m]) >= 500",
               "10m", "warning", "The outbox of {{ $labels.service }} is not draining",
               "Events staged by {{ $labels.service }} in {{ $labels.namespace }} wait in its outbox: Kafka is "
               "unreachable or refuses them, and consumers downstream see nothing new."),
    ]


def prometheus_rule() -> dict[str, Any]:
    return {"apiVersion": MONITORING_API, "kind": "PrometheusRule",
            "metadata": {"name": "amiflow", "labels": dict(PART_OF)},
            "spec": {"groups": [{"name": "amiflow", "rules": alerts()}]}}


def dashboard_config_map() -> dict[str, Any]:
    """The dashboard as the Grafana sidecar loads it: any ConfigMap labelled grafana_dashboard=1."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "amiflow-dashboard", "labels": {**PART_OF, "grafana_dashboard": "1"},
                         # The folder, where the sidecar's folderAnnotation is set to grafana_folder.
                         "annotations": {"grafana_folder": "amiflow"}},
            "data": {"amiflow.json": json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"}}


class _BlockText(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type information here
    """Multi-line strings as literal blocks: the dashboard stays readable (and diffable) in its ConfigMap."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockText.add_representer(str, _text)


def dump(resources: list[dict[str, Any]]) -> str:
    text: str = yaml.dump_all(resources, Dumper=_BlockText, sort_keys=False, width=120, explicit_start=True,
                              allow_unicode=True)
    return text


def resources() -> dict[str, list[dict[str, Any]]]:
    """Each file of the component with its documents."""
    return {"service-monitors.yaml": service_monitors(), "alerts.yaml": [prometheus_rule()],
            "dashboard.yaml": [dashboard_config_map()]}
