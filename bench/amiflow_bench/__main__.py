"""`make bench` → `python -m amiflow_bench`: every figure of BENCHMARKS.md in one run on this machine.

Writes bench-results/<UTC time>/results.json, chart.png and the profiles (collapsed stacks), prints
the table, and copies the three to bench-results/latest/. `--only` runs some parts; `--scale quick`
is a smoke run of a few minutes that proves the harness, not the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform as host
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from amiflow_bench.environment import bench_env
from amiflow_bench.report import chart, table

PARTS = ("decode", "baseline", "pipeline", "settlement", "gateway")
ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amiflow_bench", description=__doc__)
    parser.add_argument("--scale", choices=["full", "quick"], default="full")
    parser.add_argument("--only", metavar="LIST", help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="results folder")
    args = parser.parse_args(argv)
    parts = args.only.split(",") if args.only else list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("httpx", "aiokafka", "amiflow.localkafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the broker, PostgreSQL and services stop.
    signal.signal(signal.SIGTERM, _interrupted)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "scale": args.scale, "started_at": stamp, "parts": {}}
    work = Path(tempfile.mkdtemp(prefix="amiflow-bench-"))
    try:
        with bench_env(work) as env:
            for part in parts:
                print(f"\n== {part} ==", flush=True)
                began = time.monotonic()
                try:
                    module = importlib.import_module(f"amiflow_bench.{part}")
                    if part == "pipeline":
                        figures = module.measure(env, args.scale, profile_dir=out / "profiles")
                    else:
                        figures = module.measure(env, args.scale)
                except Exception as exc:  # one part failing must not lose the others' figures
                    traceback.print_exc()
                    figures = {"error": f"{type(exc).__name__}: {exc}"}
                figures["seconds"] = round(time.monotonic() - began, 1)
                results["parts"][part] = figures
                (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    chart(results, out / "chart.png")
    text = table(results)
    (out / "table.md").write_text(text)
    print("\n" + text)
    latest = args.out / "latest"
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out, latest)
    print(f"results: {out}/results.json, chart: {out}/chart.png")
    return 1 if any("error" in p for p in results["parts"].values()) else 0


def _interrupted(*_: Any) -> None:
    raise KeyboardInterrupt


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean nothing without it."""
    import aiokafka
    import faust
    import pydantic
    import sqlalchemy
    from amiflow_runtime.localkafka import lib_dir

    kafka_jar = next(iter(sorted(lib_dir().glob("kafka_2.13-*.jar"))), None)
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{host.system()} {host.release()}", "python": sys.version.split()[0],
        "kafka": kafka_jar.name.removeprefix("kafka_2.13-").removesuffix(".jar") if kafka_jar else "unknown",
        "postgresql": _postgres_version(), "aiokafka": aiokafka.__version__, "faust": faust.__version__,
        "pydantic": pydantic.VERSION, "sqlalchemy": sqlalchemy.__version__,
        "postgresql_durability": "fsync on, synchronous_commit on",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host.processor() or "unknown"


def _postgres_version() -> str:
    from amiflow_runtime.localpg import pg_bindir

    try:
        return pg_bindir().parent.name
    except Exception:  # no server installed: the parts that need one fail with their own reason
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
