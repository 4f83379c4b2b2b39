"""A service started while the broker is down waits, says so, answers health checks, and recovers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.localkafka import LocalKafka, free_port
from amiflow_runtime.testing import create_database
from amiflow_schemas.topics import TOPICS

pytestmark = pytest.mark.e2e


def wait_until(check, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.3)


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_worker_waits_for_a_broker_that_is_down_and_becomes_ready_when_it_comes(
        postgres_admin_url: str, tmp_path: Path) -> None:
    kafka_port, ops_port = free_port(), free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}", "AMIFLOW_ENV": "test",
           "COMMANDS_DATABASE_URL": asyncio.run(create_database(postgres_admin_url, "outage")),
           "COMMANDS_OPS_PORT": str(ops_port), "AMIFLOW_DATA_DIR": str(tmp_path), "LOG_FORMAT": "json"}
    log_file = tmp_path / "worker.log"
    with open(log_file, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "commands.main", "worker"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    broker = LocalKafka(home=tmp_path / "kafka", port=kafka_port)
    try:
        ops = f"http://127.0.0.1:{ops_port}"
        wait_until(lambda: status(f"{ops}/healthz") == 200)
        wait_until(lambda: "is not reachable yet" in log_file.read_text())
        assert status(f"{ops}/readyz") == 503
        assert worker.poll() is None  # waiting, not crash-looping

        broker.start()
        asyncio.run(ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers), TOPICS))
        wait_until(lambda: status(f"{ops}/readyz") == 200)
        assert "reachable after" in log_file.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        broker.stop()
    # uvicorn finishes its graceful shutdown, then re-raises SIGTERM so the parent sees the signal.
    assert worker.returncode in (0, -signal.SIGTERM), log_file.read_text()[-3000:]
    assert "commands-worker stopped" in log_file.read_text()
