"""Where the time goes: py-spy samples the running services from outside, without stopping them.

Each Python service process is sampled for the same window (`--nonblocking`, so the sampled process
never pauses); idle threads are left out, so the share of samples of the window's maximum is how busy
the process was. The collapsed stacks are kept for flame graphs (e.g. speedscope or flamegraph.pl) and
summarised here: the functions the process spent its own time in, and the amiflow functions that
include the most time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

RATE_HZ = 50  # low enough that sampling costs the 2-core machine little
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
OWN_CODE = ("amiflow_", "/ingest/", "/vee/", "/billing/", "/commands/", "/notify/")


def py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else (shutil.which("py-spy") or "py-spy")


class Profiler:
    """Samples every Python process of the platform for one window at once."""

    def __init__(self, processes: dict[str, psutil.Process], folder: Path) -> None:
        self.processes = processes  # the platform's service processes: every one is Python
        self.folder = folder
        self.seconds = 0.0
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, seconds: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seconds = seconds
        for name, process in self.processes.items():
            out = self.folder / f"{name}.collapsed.txt"
            self._running[name] = subprocess.Popen(
                [py_spy(), "record", "--pid", str(process.pid), "--duration", str(max(1, int(seconds))),
                 "--rate", str(RATE_HZ), "--format", "raw", "--nonblocking", "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self) -> dict[str, Any]:
        summaries: dict[str, Any] = {}
        for name, sampler in self._running.items():
            try:
                _, errors = sampler.communicate(timeout=self.seconds + 60)
            except subprocess.TimeoutExpired:
                sampler.kill()
                summaries[name] = {"error": "py-spy did not finish"}
                continue
            out = self.folder / f"{name}.collapsed.txt"
            if sampler.returncode != 0 or not out.exists():
                summaries[name] = {"error": errors.decode(errors="replace")[-300:]}
                continue
            summaries[name] = summarise(out.read_text(), self.seconds * RATE_HZ)
            summaries[name]["file"] = out.name
        return summaries


def summarise(collapsed: str, window_samples: float, top: int = 12) -> dict[str, Any]:
    """Self time per function and inclusive time per amiflow function, in % of the samples taken."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith(("thread", "process"))]
        if frames:
            own[frames[-1]] += samples
        for frame in set(frames):
            if any(marker in frame for marker in OWN_CODE):
                inclusive[frame] += samples
    if not total:
        return {"samples": 0, "busy_percent": 0.0, "self": [], "inclusive": []}
    return {
        "samples": total,
        "busy_percent": round(min(100.0, 100 * total / window_samples), 1) if window_samples else None,
        "self": [[frame, round(100 * n / total, 1)] for frame, n in own.most_common(top)],
        "inclusive": [[frame, round(100 * n / total, 1)] for frame, n in inclusive.most_common(top)],
    }


def _short(frame: str) -> str:
    """`function (path/to/module.py:12)` → `function (module/path tail)`; keeps it readable in a table."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "services/", "schemas/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match['function']} ({file})"
