"""The run's table (Markdown, as BENCHMARKS.md shows it) and its chart (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**not met**")


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, goal, verdict) for every figure the run produced."""
    parts = results.get("parts", {})
    out: list[tuple[str, str, str, str]] = []
    b0 = _get(parts, "baseline", "end_to_end_per_s")
    if b0:
        out.append(("B0: raw aiokafka produce → consume, reading-sized", _fmt(b0, " msg/s"), "", ""))
    pipeline = parts.get("pipeline", {})
    if "error" in pipeline:
        out.append(("pipeline", f"failed: {pipeline['error']}", "", ""))
    elif pipeline:
        sustained = _get(pipeline, "sustainable", "rate_per_s")
        ratio = sustained / b0 if sustained and b0 else None
        out += [
            ("pipeline capacity: ingest accepted", _fmt(_get(pipeline, "capacity", "ingest_accepted_per_s"), " /s"),
             "", ""),
            ("pipeline capacity: VEE validated", _fmt(_get(pipeline, "capacity", "validated_per_s"), " /s"), "", ""),
            ("pipeline capacity: billing charged", _fmt(_get(pipeline, "capacity", "charged_per_s"), " /s"), "", ""),
            ("pipeline sustained (backlog not growing)", _fmt(sustained, " readings/s"), "≥ 5,000/s (aim 10,000)",
             _verdict(sustained >= 5000 if sustained is not None else None)),
            ("… as a ratio to B0", _fmt(round(ratio, 3) if ratio else None), "≥ 0.25",
             _verdict(ratio >= 0.25 if ratio is not None else None)),
            ("CPU per reading, whole platform", _fmt(_get(pipeline, "sustainable", "cpu_us_per_reading_total"), " µs"),
             "", ""),
        ]
        for latency in pipeline.get("latency", []):
            goal = latency.get("load") == 0.5
            p99 = latency.get("p99_ms")
            out.append((f"reading → balance at {latency.get('load', 0):.0%} of sustained "
                        f"({_fmt(latency.get('rate_per_s'))}/s): p50 / p99 / p99.9",
                        f"{_fmt(latency.get('p50_ms'))} / {_fmt(p99)} / {_fmt(latency.get('p999_ms'))} ms",
                        "p99 ≤ 250 ms" if goal else "", _verdict(p99 <= 250 if goal and p99 is not None else None)))
        depletion = _get(pipeline, "depletion", "p99_ms")
        out.append(("balance depleted → command issued: p50 / p99",
                    f"{_fmt(_get(pipeline, 'depletion', 'p50_ms'))} / {_fmt(depletion)} ms", "p99 ≤ 1 s",
                    _verdict(depletion <= 1000 if depletion is not None else None)))
    out += _generic(parts, "settlement", "daily settlement")
    out += _generic(parts, "gateway", "gateway")
    out += _generic(parts, "decode", "decode + validate")
    return out


def _generic(parts: dict[str, Any], name: str, label: str) -> list[tuple[str, str, str, str]]:
    """A helper part's figures: each reports `summary` rows [figure, measured, goal, met] of its own."""
    part = parts.get(name)
    if not part:
        return []
    if "error" in part:
        return [(label, f"failed: {part['error']}", "", "")]
    return [(str(f), str(m), str(g), _verdict(met)) for f, m, g, met in part.get("summary", [])]


def table(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    lines = [f"amiflow bench ({results.get('scale')} scale), {results.get('started_at')}: "
             f"{machine.get('cores')} x {machine.get('cpu')}, {machine.get('memory_gb')} GB, "
             f"Kafka {machine.get('kafka')}, PostgreSQL {machine.get('postgresql')} "
             f"({machine.get('postgresql_durability')}), Python {machine.get('python')}", "",
             "| figure | measured | goal | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    """Throughput against B0, latency percentiles per load, and each helper part's bars."""
    parts = results.get("parts", {})
    figure, axes = plt.subplots(1, 3, figsize=(16, 5))
    figure.suptitle(f"amiflow bench — {results.get('started_at')} — "
                    f"{results.get('machine', {}).get('cores')} cores", fontsize=12)

    names, values = [], []
    for label, value in (("B0 raw Kafka", _get(parts, "baseline", "end_to_end_per_s")),
                         ("ingest accepted", _get(parts, "pipeline", "capacity", "ingest_accepted_per_s")),
                         ("VEE validated", _get(parts, "pipeline", "capacity", "validated_per_s")),
                         ("billing charged", _get(parts, "pipeline", "capacity", "charged_per_s")),
                         ("sustained", _get(parts, "pipeline", "sustainable", "rate_per_s"))):
        if value is not None:
            names.append(label)
            values.append(value)
    ax = axes[0]
    ax.barh(names[::-1], values[::-1], color=["#4c72b0"] * (len(names) - 1) + ["#dd8452"] if names else [])
    ax.set_xscale("log")
    ax.axvline(5000, color="red", linestyle="--", linewidth=1, label="goal 5,000/s")
    ax.set_title("throughput (readings or messages / s, log scale)")
    ax.legend(loc="lower right")

    ax = axes[1]
    latency = _get(parts, "pipeline", "latency") or []
    for key, marker in (("p50_ms", "o"), ("p99_ms", "s"), ("p999_ms", "^")):
        points = [(entry["rate_per_s"], entry[key]) for entry in latency if entry.get(key) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=key.removesuffix("_ms"))
    ax.axhline(250, color="red", linestyle="--", linewidth=1, label="p99 goal 250 ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered readings / s (open loop)")
    ax.set_title("reading → balance latency (ms, log scale)")
    ax.legend()

    ax = axes[2]
    bars = []
    for name in ("settlement", "gateway", "decode"):
        for label, value in (_get(parts, name, "chart") or {}).items():
            bars.append((f"{name}: {label}", value))
    if bars:
        ax.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1], color="#55a868")
    ax.set_title("settlement (s), gateway (MB), decode (µs)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
