"""The bench's table and chart from a results document: every part's figure and verdict, and a PNG."""

from __future__ import annotations

from pathlib import Path

from amiflow_bench.report import chart, table

RESULTS = {
    "scale": "full", "started_at": "20261122T000000Z",
    "machine": {"cores": 2, "cpu": "test cpu", "memory_gb": 24, "kafka": "4.1.1", "postgresql": "15",
                "postgresql_durability": "fsync on", "python": "3.11.7"},
    "parts": {
        "baseline": {"end_to_end_per_s": 40_000},
        "pipeline": {"capacity": {"ingest_accepted_per_s": 900, "validated_per_s": 120, "charged_per_s": 100},
                     "sustainable": {"rate_per_s": 12_000, "cpu_us_per_reading_total": 150.5},
                     "latency": [{"load": 0.5, "rate_per_s": 6000, "p50_ms": 40.0, "p99_ms": 300.0, "p999_ms": 500.0}],
                     "depletion": {"p50_ms": 200.0, "p99_ms": 800.0}},
        "settlement": {"accounts": 1_000_000, "settlement_s": 20.0, "baseline_sql_s": 10.0,
                       "ratio_settlement_to_baseline": 2.0, "settlement_accounts_per_s": 50_000, "goal_met": True},
        "gateway": {"error": "RuntimeError: no ports"},
        "decode": {"decode_us_mean": 3.0, "decode_us_worst": 5.5,
                   "events": {"ReadingReceived": {"decode_us": 3.0, "encode_us": 2.0}}},
    },
}


def test_the_table_shows_each_figure_against_its_goal(tmp_path: Path) -> None:
    text = table(RESULTS)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "12,000 readings/s" in lines["pipeline sustained (backlog not growing)"]
    assert lines["pipeline sustained (backlog not growing)"].endswith("| met |")
    assert "0.3" in lines["… as a ratio to B0"] and lines["… as a ratio to B0"].endswith("| met |")
    at_half = next(v for k, v in lines.items() if k.startswith("reading → balance at 50% of the maximum"))
    assert at_half.endswith("**not met** |")  # p99 300 ms against 250 ms
    assert lines["balance depleted → command issued: p50 / p99"].endswith("| met |")
    settlement = next(v for k, v in lines.items() if k.startswith("daily settlement of 1,000,000"))
    assert "2.0 x" in settlement and settlement.endswith("| met |")
    assert "failed: RuntimeError: no ports" in lines["gateway"]
    decode = next(v for k, v in lines.items() if k.startswith("decode + validate"))
    assert decode.endswith("**not met** |")  # the worst type is over 4 µs
    chart(RESULTS, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
