"""Composition root of ingest: `python -m ingest.main api|worker|migrate`."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.process import api_app, service_main, worker_app
from amiflow_runtime.service import ServiceRuntime, Subscription
from amiflow_schemas.topics import topic_named
from fastapi import FastAPI

from ingest.adapters import db
from ingest.adapters.http import router
from ingest.adapters.registry_http import router as registry_router
from ingest.adapters.undo import UNDO
from ingest.config import IngestSettings
from ingest.gateway.downlink import on_command
from ingest.gateway.server import DtuGateway

MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.ingest").name
COMMANDS = topic_named("amiflow.commands.lifecycle").name


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    """The runtime of one ingest process; API and worker both relay the outbox (one leads)."""
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    """The integrators' API: readings in, receipts out."""
    return api_app(build_runtime(settings, "api"), title="amiflow ingest",
                   description="Head-end: readings from integrators, devices and the DTU gateway.",
                   routers=[router, registry_router], undo=UNDO)


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """The head-end worker: the DTU gateway, command downlink, and the outbox relay."""
    assert isinstance(settings, IngestSettings)
    runtime = build_runtime(settings, "worker")
    extra = []
    if settings.gateway_enabled:
        gateway = DtuGateway(runtime, settings, instance=f"{socket.gethostname()}-{os.getpid()}")
        extra.append(gateway.run)
    return worker_app(runtime, [Subscription("ingest.downlink", [COMMANDS], on_command)], extra)


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=IngestSettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
