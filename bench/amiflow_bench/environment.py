"""What every benchmark runs on: its own Kafka broker and a durable PostgreSQL server, in one folder.

PostgreSQL runs with fsync and synchronous commit on (unlike the test suite's server): a benchmark that
skipped the WAL flush would promise a throughput production cannot have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.localkafka import LocalKafka, free_port
from amiflow_runtime.localpg import LocalPostgres
from amiflow_runtime.testing import create_database, stop_platform, suite_signing_key, wait_until_ready
from amiflow_schemas.topics import TOPICS

log = logging.getLogger("amiflow.bench")
READY_TIMEOUT_S = 240.0


@dataclass
class BenchEnv:
    """A broker with the registry's topics and a PostgreSQL server, both started for the run."""

    folder: Path
    kafka: LocalKafka
    postgres: LocalPostgres
    bootstrap: str
    admin_url: str

    async def database(self, prefix: str) -> str:
        """A new empty database on the server; its SQLAlchemy URL."""
        return str(await create_database(self.admin_url, prefix))

    def processes(self) -> dict[str, psutil.Process]:
        """The broker's and PostgreSQL's processes (every PostgreSQL backend is a child of the postmaster)."""
        found = {}
        if self.kafka.process is not None:
            found["kafka"] = psutil.Process(self.kafka.process.pid)
        pid_file = self.postgres.data_dir / "postmaster.pid"
        if pid_file.exists():
            found["postgresql"] = psutil.Process(int(pid_file.read_text().split()[0]))
        return found


@contextmanager
def bench_env(folder: Path) -> Iterator[BenchEnv]:
    """Start the broker and PostgreSQL under `folder`; stop both and delete their data afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    suite_signing_key()  # tokens for the APIs: the services trust its public half (AMIFLOW_AUTH_JWKS_FILE)
    os.environ["AMIFLOW_AUTH_JWKS_URL"] = ""
    kafka = LocalKafka(home=folder / "kafka", port=free_port(), log_level="WARN")
    postgres = LocalPostgres(durable=True)  # its own folder: the server runs as the postgres user
    try:
        bootstrap = kafka.start()
        admin_url = postgres.start()
        asyncio.run(ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap), TOPICS))
        yield BenchEnv(folder, kafka, postgres, bootstrap, admin_url)
    finally:
        kafka.stop()
        postgres.destroy()
        shutil.rmtree(folder / "kafka", ignore_errors=True)


@dataclass
class Platform:
    """Services started by `amiflow up` (as a user starts them) on the bench's broker and PostgreSQL."""

    services: Sequence[str]
    api: dict[str, str]
    env: dict[str, str]
    log_file: Path
    process: subprocess.Popen[bytes]
    gateway_port: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def processes(self) -> dict[str, psutil.Process]:
        """Each service process by its role, e.g. 'vee-worker', from the command lines under `amiflow up`."""
        found = {}
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                line = child.cmdline()
            except psutil.Error:
                continue
            for service in self.services:
                if f"{service}.main" in " ".join(line) and line[-1] in ("api", "worker"):
                    found[f"{service}-{line[-1]}"] = child
        return found

    def stop(self) -> None:
        stop_platform(self.process)


@contextmanager
def platform(env: BenchEnv, services: Sequence[str], name: str, extra_env: dict[str, str] | None = None,
             ) -> Iterator[Platform]:
    """`amiflow up --no-broker --services …` with one fresh database per service; waits for /readyz."""
    folder = env.folder / name
    folder.mkdir(parents=True, exist_ok=True)
    run_env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": env.bootstrap, "AMIFLOW_DATA_DIR": str(folder),
               "AMIFLOW_ENV": "development", "AMIFLOW_LOG_LEVEL": "WARNING", **(extra_env or {})}
    api, ops = {}, {}
    for service in services:
        prefix = service.upper()
        run_env[f"{prefix}_DATABASE_URL"] = asyncio.run(env.database(f"{name}_{service}"))
        run_env[f"{prefix}_API_PORT"], run_env[f"{prefix}_OPS_PORT"] = str(free_port()), str(free_port())
        api[service] = f"http://127.0.0.1:{run_env[f'{prefix}_API_PORT']}"
        ops[service] = f"http://127.0.0.1:{run_env[f'{prefix}_OPS_PORT']}"
    gateway_port = free_port()
    run_env["INGEST_GATEWAY_PORT"] = str(gateway_port)
    run_env["AMIFLOW_MAILBOX_PORT"] = str(free_port())
    log_file = folder / "amiflow-up.log"
    with open(log_file, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "amiflow_runtime.cli", "up", "--no-broker",
                                    "--no-console", "--services", ",".join(services)],
                                   env=run_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    running = Platform(services, api, run_env, log_file, process, gateway_port)
    try:
        wait_until_ready(process, [f"{u}/readyz" for u in (*api.values(), *ops.values())], READY_TIMEOUT_S,
                         lambda: f"see {log_file}")
        yield running
    finally:
        running.stop()
