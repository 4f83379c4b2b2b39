"""What the browser tests share: running a Playwright scenario (a Node script in this folder) against the
console, and preparing the platform through its APIs as the demo tenant's administrator.

A scenario is `node tests/browser/<name>.mjs` with its parameters as JSON in BROWSER_PARAMS; it prints one JSON
result line and exits 1 with the step and the reason when something on the page is not as expected. Its
screenshots, its result.json and its output (script.log) stay in test-artifacts/browser/<test name>/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from amiflow_runtime.paths import project_root
from amiflow_runtime.testing import auth_headers

REPO: Path = project_root()
HERE = Path(__file__).resolve().parent
WEB = REPO / "services" / "console" / "web"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; AMIFLOW_CHROMIUM names another
TENANT = "demo"
T = TypeVar("T")


def chromium() -> str:
    """The browser to drive; the test fails (not skips) without one: the browser tests are part of `make test`."""
    path = os.environ.get("AMIFLOW_CHROMIUM") or CHROMIUM
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no chromium at {path}: install Debian's package (apt-get install chromium, as .ci/run does) "
                    "or name the executable in AMIFLOW_CHROMIUM")
    return path


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("Node.js is needed to drive the browser (the console's build needs it too)")
    if not (WEB / "node_modules" / "playwright-core" / "package.json").is_file():
        pytest.fail(f"playwright-core is not installed in {WEB / 'node_modules'}: run `make web`")
    return found


@dataclass(frozen=True)
class Platform:
    """A running `amiflow up`: each service's API, the environment it runs with (ports, database URLs), the
    console's URL and its log."""

    api: dict[str, str]
    env: dict[str, str]
    console: str
    log_file: Path

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")


@dataclass(frozen=True)
class ScriptRun:
    """How a scenario ended: its exit code, its JSON result and how long it took."""

    exit_code: int
    result: dict[str, Any]
    seconds: float
    folder: Path

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and self.result.get("ok") is True

    def explain(self) -> str:
        """Why it failed, for the assertion message: the step, the reason, the page, where the pictures are."""
        r = self.result
        lines = [f"browser scenario failed (exit {self.exit_code}) at step {r.get('step', '?')!r}: "
                 f"{r.get('reason', 'no reason given')}",
                 f"  page: {r.get('url')}", f"  screenshots and log: {self.folder}"]
        for kind in ("page_errors", "server_errors", "console_errors"):
            for entry in r.get(kind, [])[:5]:
                lines.append(f"  {kind[:-1].replace('_', ' ')}: {json.dumps(entry, ensure_ascii=False)[:400]}")
        return "\n".join(lines)


class Browser:
    """Runs this folder's scenarios against one console, into one test's artifact folder."""

    def __init__(self, console: str, folder: Path) -> None:
        self.console = console
        self.folder = folder
        self.node = node()
        self.chromium = chromium()

    async def run(self, script: str, timeout_s: float, **params: Any) -> ScriptRun:
        """Run `<script>.mjs` asynchronously (the test's own event loop, e.g. a simulated fleet, keeps going)."""
        payload = {"base": self.console, "artifacts": str(self.folder), "chromium": self.chromium, **params}
        env = {**os.environ, "BROWSER_PARAMS": json.dumps(payload)}
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(self.node, str(HERE / f"{script}.mjs"), cwd=WEB, env=env,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            # Its own process group: the chromium it started goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            out, err = await process.communicate()
            self._keep_log(script, out, err)
            raise AssertionError(f"{script}.mjs did not finish within {timeout_s:.0f} s; see {self.folder}") from None
        self._keep_log(script, out, err)
        assert process.returncode is not None
        return ScriptRun(process.returncode, _last_json(out, err), time.monotonic() - started, self.folder)

    def _keep_log(self, script: str, out: bytes, err: bytes) -> None:
        text = out.decode("utf-8", "replace") + "\n--- stderr ---\n" + err.decode("utf-8", "replace")
        (self.folder / f"{script}.log").write_text(text)


def _last_json(out: bytes, err: bytes) -> dict[str, Any]:
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            try:
                answer: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            return answer
    stderr = err.decode("utf-8", "replace")[-2000:]
    return {"ok": False, "step": "start", "reason": f"no result printed; stderr: {stderr}"}


def artifact_folder(test_name: str) -> Path:
    """test-artifacts/browser/<test name>/, emptied: what is in it after a run is that run's."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def admin(base_url: str) -> httpx.AsyncClient:
    """One service's API as a platform administrator acting in the demo tenant."""
    return httpx.AsyncClient(base_url=base_url, headers=auth_headers(TENANT), timeout=30.0)


async def new_user(identity_api: str, username: str, roles: list[str], **reach: Any) -> str:
    """A user of the demo tenant through identity's API; the generated password it answers with (once)."""
    async with admin(identity_api) as http:
        made = await http.post("/v1/users", json={"username": username, "roles": roles, **reach})
    assert made.status_code == 201, made.text
    password: str = made.json()["password"]
    return password


async def eventually(what: str, fetch: Callable[[], Awaitable[T | None]], timeout_s: float = 120.0) -> T:
    """fetch() until it answers something truthy; AssertionError naming `what` after the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await fetch()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.5)


def wait_for_console(console: str, timeout_s: float, logs: Callable[[], str]) -> None:
    """Until the console answers ready (it is only once services/console/web/dist is built)."""
    deadline = time.monotonic() + timeout_s
    answer = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(f"{console}/readyz", timeout=2.0)
            if reply.status_code == 200:
                return
            answer = f"{reply.status_code} {reply.text[:300]}"
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
        time.sleep(0.5)
    pytest.fail(f"the console at {console} is not ready after {timeout_s:.0f} s ({answer}); the web app is built "
                f"by `make web`. Console log lines:\n" + "\n".join(
                    line for line in logs().splitlines() if "console" in line)[-3000:])
