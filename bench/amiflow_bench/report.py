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
        out += _failed(pipeline, "pipeline")
    elif pipeline:
        sustained = _get(pipeline, "sustainable", "rate_per_s")
        ratio = sustained / b0 if sustained and b0 else None
        out += [
            ("pipeline capacity: ingest accepted", _fmt(_get(pipeline, "capacity", "ingest_accepted_per_s"), " /s"),
             "", ""),
            ("pipeline capacity: VEE validated", _fmt(_get(pipeline, "capacity", "validated_per_s"), " /s"), "", ""),
            ("pipeline capacity: billing charged", _fmt(_get(pipeline, "capacity", "charged_per_s"), " /s"), "", ""),
            (f"concentrator upload ({_fmt(_get(pipeline, 'upload', 'hours_per_meter'))} h per meter at once): "
             "VEE validated / billing charged",
             f"{_fmt(_get(pipeline, 'upload', 'validated_per_s'))} / {_fmt(_get(pipeline, 'upload', 'charged_per_s'))}"
             " /s", "", ""),
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
            out.append((f"reading → balance at {latency.get('load', 0):.0%} of the maximum rate "
                        f"({_fmt(latency.get('rate_per_s'))}/s): p50 / p99 / p99.9",
                        f"{_fmt(latency.get('p50_ms'))} / {_fmt(p99)} / {_fmt(latency.get('p999_ms'))} ms",
                        "p99 ≤ 250 ms" if goal else "", _verdict(p99 <= 250 if goal and p99 is not None else None)))
        depletion = _get(pipeline, "depletion", "p99_ms")
        out.append(("balance depleted → command issued: p50 / p99",
                    f"{_fmt(_get(pipeline, 'depletion', 'p50_ms'))} / {_fmt(depletion)} ms", "p99 ≤ 1 s",
                    _verdict(depletion <= 1000 if depletion is not None else None)))
    out += _settlement(parts.get("settlement"))
    out += _gateway(parts.get("gateway"))
    out += _decode(parts.get("decode"))
    return out


def _failed(part: dict[str, Any], label: str) -> list[tuple[str, str, str, str]]:
    return [(label, f"failed: {part['error']}", "", "")]


def _settlement(part: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    if not part:
        return []
    if "error" in part:
        return _failed(part, "daily settlement")
    ratio = part.get("ratio_settlement_to_baseline")
    return [(f"daily settlement of {_fmt(part.get('accounts'))} accounts: billing's job / set-based SQL",
             f"{_fmt(part.get('settlement_s'))} s / {_fmt(part.get('baseline_sql_s'))} s = {_fmt(ratio)} x "
             f"({_fmt(part.get('settlement_accounts_per_s'))} accounts/s)",
             "≤ 2.5 x at 1,000,000 accounts", _verdict(part.get("goal_met")))]


def _gateway(part: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    if not part:
        return []
    if "error" in part:
        return _failed(part, "gateway")
    held = part.get("connections_held_to_end")
    per = part.get("memory_per_connection_kib")
    rss = _get(part, "memory_mib", "holding_end", "rss")
    return [("one gateway process: DTU connections held / memory",
             f"{_fmt(held)} held, RSS {_fmt(rss)} MiB, {_fmt(per if not isinstance(per, dict) else per.get('rss'))}"
             " KiB per connection", "10,000, bounded", _verdict(part.get("goal_met")))]


def _decode(part: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    if not part:
        return []
    if "error" in part:
        return _failed(part, "decode + validate")
    worst = part.get("decode_us_worst")
    return [("decode + validate per event per hop (mean / worst hot-path type)",
             f"{_fmt(part.get('decode_us_mean'))} / {_fmt(worst)} µs", "≤ 4 µs",
             _verdict(worst <= 4 if isinstance(worst, int | float) else None))]


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
    colors = ["#dd8452" if n in ("B0 raw Kafka", "sustained") else "#4c72b0" for n in names]
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
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
    events = _get(parts, "decode", "events") or {}
    if events:
        names = list(events)
        ax.barh(names[::-1], [events[n]["decode_us"] for n in names][::-1], color="#55a868", label="decode")
        ax.barh(names[::-1], [events[n]["encode_us"] for n in names][::-1], color="#c44e52", alpha=0.5,
                label="encode")
        ax.axvline(4, color="red", linestyle="--", linewidth=1, label="goal 4 µs")
        ax.legend(loc="lower right")
    ax.set_title("decode / encode per event (µs)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
