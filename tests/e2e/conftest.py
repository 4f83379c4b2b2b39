"""The whole platform as `amiflow up` runs it, on the session's broker and one PostgreSQL database
per service, on free ports."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import create_database, started_kafka, stop_platform, wait_until_ready

from .otlp import OtlpReceiver

SERVICES = ("identity", "ingest", "vee", "billing", "commands", "notify")
READY_TIMEOUT_S = 180.0


@dataclass
class Platform:
    """URLs of a running platform and where its logs go."""

    api: dict[str, str]
    ops: dict[str, str]
    bootstrap: str
    log_file: Path
    process: subprocess.Popen[bytes]
    # The environment `amiflow up` runs with: every port (INGEST_GATEWAY_PORT, …) and database URL.
    env: dict[str, str] = field(default_factory=dict)
    traces: OtlpReceiver | None = None  # the spans every process exported (OTLP/HTTP, as to a collector)
    # The web console and portal `up` serves too; not waited for here: it is ready only once
    # services/console/web/dist is built, which the browser tests (tests/browser) wait for themselves.
    console: str = ""

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[str]:
    """A broker of one test's own, for a test that runs a worker of its own and reads what comes out of Kafka.

    On the session's broker the platform (below) runs every worker too: its VEE validates the test's feed
    as well and publishes under the same name-based event and alarm ids. Its consumer batches the feed its
    own way, and VEE derives a batch's readings of a series together (an alarm episode starts where the
    merged readings show it; a slot read in the same batch is never estimated first), so what came out
    would be a mix of two workers, and one worker's loss could hide behind the other's output."""
    with started_kafka(tmp_path / "kafka", log_level="WARN") as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="session")
def platform(kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory,
             otlp_receiver: OtlpReceiver) -> Iterator[Platform]:
    """Every service's API and worker, started by `amiflow up` exactly as a user starts them."""
    folder = tmp_path_factory.mktemp("platform")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AMIFLOW_DATA_DIR": str(folder),
           "AMIFLOW_ENV": "test",
           # Spans go where a collector would be; exported every 0.2 s instead of 5 s so a test need not wait.
           "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
           # Readings up to three hours ahead: a test can bill the next hours of an account it opened just now.
           "INGEST_MAX_FUTURE_SKEW_S": "10800"}
    api, ops = {}, {}
    for service in SERVICES:
        prefix = service.upper()
        env[f"{prefix}_DATABASE_URL"] = asyncio.run(create_database(postgres_admin_url, service))
        env[f"{prefix}_API_PORT"], env[f"{prefix}_OPS_PORT"] = str(free_port()), str(free_port())
        api[service] = f"http://127.0.0.1:{env[f'{prefix}_API_PORT']}"
        ops[service] = f"http://127.0.0.1:{env[f'{prefix}_OPS_PORT']}"
    # The services check identity's tokens; the suite's own test keys stay trusted through AMIFLOW_AUTH_JWKS_FILE.
    env["AMIFLOW_AUTH_JWKS_URL"] = f"{api['identity']}/.well-known/jwks.json"
    env["INGEST_GATEWAY_PORT"] = str(free_port())
    env["AMIFLOW_MAILBOX_PORT"] = str(free_port())
    env["CONSOLE_API_PORT"] = str(free_port())
    log_file = folder / "amiflow-up.log"
    with open(log_file, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "amiflow_runtime.cli", "up"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    running = Platform(api, ops, kafka_bootstrap, log_file, process, env, otlp_receiver,
                       f"http://127.0.0.1:{env['CONSOLE_API_PORT']}")
    try:
        wait_until_ready(process, [f"{u}/readyz" for u in (*api.values(), *ops.values())], READY_TIMEOUT_S,
                         lambda: running.logs()[-5000:])
        yield running
    finally:
        stop_platform(process)
