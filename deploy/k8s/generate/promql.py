"""The metrics a PromQL expression names, and the metrics the services register: the dashboard and the alerts
may only ask for series that some process exposes (a typo in a panel shows "No data", never an error).

`python -m deploy.k8s.generate.promql` imports every service's composition root and prints, as JSON, each
exposed series name with its label names; the tests run it in a process of its own so that metrics the test
suite registers cannot stand in for the services'.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass, field

# The composition roots: importing them registers every metric their processes serve on /metrics.
SERVICE_MODULES = ("ingest.main", "vee.main", "billing.main", "commands.main", "notify.main", "identity.main",
                   "console.main", "amiflow_runtime.metrics", "amiflow_runtime.http_metrics")
# Labels Prometheus adds to every series a ServiceMonitor scrapes (the target's), not the process.
TARGET_LABELS = frozenset({"namespace", "service", "pod", "container", "endpoint", "job", "instance"})
# Words of PromQL that look like names but are operators, modifiers or literals.
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![a-zA-Z0-9_:#])\d+(?:\.\d+)?(?:e[+-]?\d+)?")
_LABEL_VALUES = re.compile(r"\blabel_values\(([^,]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)")  # Grafana's, in variables
_NAME = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?(?:\s*#(\d+))?")


@dataclass(frozen=True)
class Selector:
    """One vector selector of an expression: the metric and its label matchers (label, operator, value)."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = field(default=())


def selectors(expression: str) -> list[Selector]:
    """Every metric the expression selects, with its matchers; functions and aggregations are not metrics."""
    parsed: list[tuple[tuple[str, str, str], ...]] = []

    def placeholder(found: re.Match[str]) -> str:
        parsed.append(tuple(_MATCHER.findall(found.group(1))))
        return f" #{len(parsed) - 1} "

    text = _MATCHERS.sub(placeholder, _LABEL_VALUES.sub(r"\1", expression))
    for pattern in (_STRING, _RANGE, _GROUPING):
        text = pattern.sub(" ", text)
    text = re.sub(r"\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?", " ", text)  # Grafana's variables
    text = _NUMBER.sub(" ", text)
    found = []
    for name, call, index in _NAME.findall(text):
        if call or name in KEYWORDS:
            continue
        found.append(Selector(name, parsed[int(index)] if index else ()))
    return found


def exposed_series() -> dict[str, list[str] | None]:
    """Series name -> label names, for every metric the default registry holds (as /metrics writes them);
    None where the collector does not say (the client's own process and platform collectors)."""
    from prometheus_client import REGISTRY

    collectors = REGISTRY._names_to_collectors
    found: dict[str, list[str] | None] = {}
    for family in REGISTRY.collect():
        collector = collectors.get(family.name) or collectors.get(f"{family.name}_total")
        names = getattr(collector, "_labelnames", None)
        labels = None if names is None else list(names)
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}.get(family.type, ("",))
        for suffix in suffixes:
            found[family.name + suffix] = [*labels, "le"] if labels is not None and suffix == "_bucket" else labels
    return found


def main() -> int:
    for module in SERVICE_MODULES:
        importlib.import_module(module)
    json.dump(exposed_series(), sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
