"""The monitoring component: the dashboard and the alerts ask only for series the services expose, the
ServiceMonitors reach every process's /metrics, and each alert leads to its section of the runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from amiflow_schemas.registry import EVENT_TYPES
from amiflow_schemas.topics import TOPICS

from deploy.k8s.generate.catalog import CONSOLE, SERVICES
from deploy.k8s.generate.monitoring import DASHBOARD, KUBE_STATE_METRICS
from deploy.k8s.generate.promql import TARGET_LABELS, Selector, selectors
from deploy.k8s.generate.validation import ROOT, named

Rendered = dict[str, list[dict[str, Any]]]
Series = dict[str, list[str] | None]
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
# What a panel may filter on besides label names: values the code writes (consumer names are the
# Subscription / inbox_agent names in each main.py).
MAINS = "\n".join(p.read_text() for p in sorted((ROOT / "services").glob("*/*/main.py")))
KNOWN_VALUES = {"topic": {t.name for t in TOPICS}, "event_type": set(EVENT_TYPES)}
REQUIRED_ALERTS = {"AmiflowConsumerLagGrowing", "AmiflowEventsDeadLettered", "AmiflowApiErrors",
                   "AmiflowWorkerNotReady", "AmiflowOutboxBacklog"}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _dashboard_expressions() -> list[str]:
    variables = [v["query"]["query"] for v in _dashboard()["templating"]["list"] if v["type"] == "query"]
    return [t["expr"] for panel in _panels() for t in panel["targets"]] + variables


def _alerts(rendered: Rendered) -> list[dict[str, Any]]:
    return [rule for group in named(rendered["prod"], "PrometheusRule", "amiflow")["spec"]["groups"]
            for rule in group["rules"]]


def _unknown(selector: Selector, series: Series) -> list[str]:
    """What in one selector names nothing the services expose: the metric, a label, a label's value."""
    if selector.metric not in series:
        return [f"no metric {selector.metric}"]
    labels = series[selector.metric]
    found = []
    for label, operator, value in selector.matchers:
        if labels is not None and label not in labels and label not in TARGET_LABELS:
            found.append(f"{selector.metric} has no label {label}")
        alternatives = value.split("|") if operator == "=~" else [value] if operator == "=" else []
        known = KNOWN_VALUES.get(label)
        for alternative in alternatives:
            if label == "consumer" and f'"{alternative}"' not in MAINS:
                found.append(f"no consumer {alternative} in any main.py")
            if known is not None and alternative not in known:
                found.append(f"{selector.metric}: {label} {alternative} is not known")
    return found


def test_every_dashboard_expression_names_only_exposed_series(exposed_series: Series) -> None:
    expressions = _dashboard_expressions()
    assert len(expressions) > 30
    unknown = {e: problems for e in expressions
               if (problems := [p for s in selectors(e) for p in _unknown(s, exposed_series)])}
    assert unknown == {}
    assert all(selectors(e) for e in expressions), "every expression selects some metric"


def test_every_alert_names_only_exposed_series_or_kube_state_metrics(rendered: Rendered,
                                                                      exposed_series: Series) -> None:
    series: Series = {**exposed_series, **{m: ["namespace", "deployment"] for m in KUBE_STATE_METRICS}}
    unknown = {rule["alert"]: problems for rule in _alerts(rendered)
               if (problems := [p for s in selectors(rule["expr"]) for p in _unknown(s, series)])}
    assert unknown == {}


def test_a_misspelt_metric_label_or_consumer_is_reported(exposed_series: Series) -> None:
    # The check above can fail: each kind of slip is found.
    cases = {
        'rate(amiflow_events_handeld_total{namespace="$namespace"}[5m])': "no metric amiflow_events_handeld_total",
        "sum by (consumer) (amiflow_consumer_lag{consumr=\"vee.validation\"})": "has no label consumr",
        'amiflow_events_handled_total{consumer="billing.reading"}': "no consumer billing.reading",
        'amiflow_outbox_published_total{topic=~"amiflow.ingest.readings|amiflow.ingest.reading"}': "is not known",
        'amiflow_http_request_seconds{route="/"}': "no metric amiflow_http_request_seconds",  # a histogram
    }
    for expression, problem in cases.items():
        found = [p for s in selectors(expression) for p in _unknown(s, exposed_series)]
        assert any(problem in p for p in found), (expression, found)


def test_the_dashboard_has_a_datasource_and_a_namespace_variable_every_panel_honours() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["datasource"]["uid"] == "${datasource}"
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            # Every selector filters on the namespace: two amiflow namespaces in one Prometheus never mix.
            assert all(("namespace", "=", "$namespace") in s.matchers for s in selectors(target["expr"])), \
                (panel["title"], target["expr"])


def test_the_dashboard_has_the_rows_an_operator_reads() -> None:
    rows = [p["title"] for p in _dashboard()["panels"] if p["type"] == "row"]
    assert [r.split()[0].rstrip(":") for r in rows] == ["Pipeline", "APIs", "DTU", "Billing", "Commands"]
    titles = {p["title"] for p in _panels()}
    assert {"Readings accepted by ingest", "Events handled per consumer", "Consumer lag",
            "Handler batch duration p50 / p99", "Dead-lettered", "Request rate", "5xx ratio", "4xx ratio",
            "p99 duration by route", "DTU links online", "Frames decoded", "Unbilled readings",
            "Commands issued", "Notification deliveries"} <= titles
    ids = [p["id"] for p in _dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def test_the_dashboard_config_map_is_the_json_file_for_the_grafana_sidecar(rendered: Rendered) -> None:
    config_map = named(rendered["prod"], "ConfigMap", "amiflow-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    assert json.loads(text) == _dashboard()
    # kubectl apply keeps the whole object in an annotation, which may not exceed 256 KiB.
    assert len(text.encode()) < 200 * 1024


def test_the_service_monitors_scrape_every_api_and_worker_on_its_named_port(rendered: Rendered) -> None:
    docs = rendered["prod"]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    processes = [*((s.name, (("api", "http"), ("worker", "ops"))) for s in SERVICES),
                 (CONSOLE.name, (("api", "http"),))]
    for name, roles in processes:
        for role, port_name in roles:
            target = named(docs, "Service", f"{name}-{role}")
            labels = target["metadata"]["labels"]
            port_names = {p["name"] for p in target["spec"]["ports"]}
            scraping = [m for m in monitors
                        if all(labels.get(k) == v for k, v in m["spec"]["selector"]["matchLabels"].items())
                        and any(e["port"] in port_names for e in m["spec"]["endpoints"])]
            assert len(scraping) == 1, f"{name}-{role} is scraped once"
            (endpoint,) = scraping[0]["spec"]["endpoints"]
            assert (endpoint["port"], endpoint["path"]) == (port_name, "/metrics")
            # ... and the pod admits Prometheus on that port.
            port = next(p["port"] for p in target["spec"]["ports"] if p["name"] == port_name)
            ingress = named(docs, "NetworkPolicy", f"{name}-{role}")["spec"]["ingress"]
            assert any({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
                       in rule["from"] and {"protocol": "TCP", "port": port} in rule["ports"] for rule in ingress)


def _anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_required_alerts_exist_and_each_links_to_its_runbook_section(rendered: Rendered) -> None:
    alerts = _alerts(rendered)
    assert {a["alert"] for a in alerts} >= REQUIRED_ALERTS
    anchors = _anchors(RUNBOOK)
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("/deploy/RUNBOOK.md") and url.split("#")[1] in anchors, alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


@pytest.mark.parametrize("expression", ["amiflow_consumer_lag > 0", 'up{job="x"} == 0'])
def test_the_expression_reader_skips_functions_keywords_and_groupings(expression: str) -> None:
    text = f"sum by (consumer, le) (rate({expression.split()[0]}[5m])) > 0 and on (namespace) vector(1)"
    assert [s.metric for s in selectors(text)] == [expression.split()[0].split("{")[0]]
