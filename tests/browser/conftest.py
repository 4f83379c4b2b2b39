"""The platform the browser tests drive: `amiflow up` exactly as a user runs it (`make run`) — its own Kafka
broker, every service, the console — on free ports, one PostgreSQL database per service on the session's server.

Why not the e2e suite's session `platform` (tests/e2e/conftest.py): importing that fixture here would not share
it. pytest registers an imported fixture function as a second definition with its own cache, so a run of the
whole suite would start a second platform on the session's broker, whose workers join the same fixed consumer
groups as the first one's and take their partitions. This platform has a broker of its own instead, and it is
stopped after the last browser test (package scope), before the e2e tests start theirs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import create_database, stop_platform, wait_until_ready

from .harness import Browser, Platform, artifact_folder, wait_for_console

SERVICES = ("identity", "ingest", "vee", "billing", "commands", "notify")
READY_TIMEOUT_S = 300.0  # a broker and thirteen processes on a shared two-core machine
CONSOLE_READY_TIMEOUT_S = 60.0


@pytest.fixture(scope="package")
def platform(postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("browser-platform")
    # Not the session's broker (see above): `up` starts and stops one of its own.
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({"AMIFLOW_DATA_DIR": str(folder), "AMIFLOW_ENV": "test", "INGEST_GATEWAY_PORT": str(free_port()),
                "AMIFLOW_MAILBOX_PORT": str(free_port()), "CONSOLE_API_PORT": str(free_port())})
    api, ops = {}, {}
    for service in SERVICES:
        prefix = service.upper()
        env[f"{prefix}_DATABASE_URL"] = asyncio.run(create_database(postgres_admin_url, f"browser_{service}"))
        env[f"{prefix}_API_PORT"], env[f"{prefix}_OPS_PORT"] = str(free_port()), str(free_port())
        api[service] = f"http://127.0.0.1:{env[f'{prefix}_API_PORT']}"
        ops[service] = f"http://127.0.0.1:{env[f'{prefix}_OPS_PORT']}"
    # The services check identity's tokens; the suite's own test keys stay trusted through AMIFLOW_AUTH_JWKS_FILE.
    env["AMIFLOW_AUTH_JWKS_URL"] = f"{api['identity']}/.well-known/jwks.json"
    log_file = folder / "amiflow-up.log"
    with open(log_file, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "amiflow_runtime.cli", "up", "--kafka-port",
                                    str(free_port())], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = Platform(api, env, f"http://127.0.0.1:{env['CONSOLE_API_PORT']}", log_file)
    try:
        wait_until_ready(process, [f"{u}/readyz" for u in (*api.values(), *ops.values())], READY_TIMEOUT_S,
                         lambda: running.logs()[-5000:])
        # Ready only once services/console/web/dist is built (`make web`; `make test` builds it first).
        wait_for_console(running.console, CONSOLE_READY_TIMEOUT_S, running.logs)
        yield running
    finally:
        stop_platform(process)


@pytest.fixture
def browser(platform: Platform, request: pytest.FixtureRequest) -> Browser:
    """Playwright scenarios against the console, into test-artifacts/browser/<test name>/."""
    return Browser(platform.console, artifact_folder(request.node.name))
