"""Entry points of a service's processes: `python -m <service>.main api|worker|migrate`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI

from amiflow_runtime.audit_api import router as audit_router
from amiflow_runtime.audit_cli import audit_command
from amiflow_runtime.audit_db import runtime_trail
from amiflow_runtime.audit_undo import NO_UNDO, UndoRegistry
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.db import upgrade
from amiflow_runtime.http import create_app, lifespan_of, serve
from amiflow_runtime.logs import configure_logging
from amiflow_runtime.service import ServiceRuntime, Subscription
from amiflow_runtime.telemetry import configure_tracing

log = logging.getLogger("amiflow.process")


def configure_process(settings: ServiceSettings, role: str) -> None:
    """Logging and tracing for one process of a service."""
    configure_logging(settings.service_name, role, settings.log_level, settings.log_format)
    configure_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)


def service_main(argv: list[str] | None, *, settings: Callable[[], ServiceSettings],
                 api: Callable[[ServiceSettings], FastAPI],
                 worker: Callable[[ServiceSettings], Callable[[], None]],
                 migrations_dir: Path, tools: Mapping[str, Callable[[ServiceSettings], int]] | None = None) -> int:
    """Parse the role and run it; `worker` returns a blocking runner (uvicorn ops app or Faust); a tool
    (e.g. billing's `rebuild`) runs once and its return value is the exit code."""
    tools = tools or {}
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["audit"]:  # `audit verify [--against-kafka]`: this service's audit chain
        return audit_command(given[1:], settings)
    parser = argparse.ArgumentParser(description="Run one process of an amiflow service")
    parser.add_argument("role", choices=["api", "worker", "migrate", *tools])
    args = parser.parse_args(argv)
    try:
        config = settings()
    except ValueError as exc:  # pydantic ValidationError: refuse to start with a clear reason
        print(f"invalid settings: {exc}", file=sys.stderr)  # noqa: T201 - logging is not set up yet
        return 2
    configure_process(config, args.role)
    if args.role == "migrate":
        upgrade(migrations_dir, config.resolved_database_url)
        log.info("%s database is at the newest revision", config.service_name)
    elif args.role in tools:
        return tools[args.role](config)
    elif args.role == "api":
        serve(api(config), config, config.resolved_api_port)
    else:
        worker(config)()
    return 0


def _liveness(runtime: ServiceRuntime) -> Callable[[], str | None]:
    return lambda: runtime.startup_error


def api_app(runtime: ServiceRuntime, *, title: str, description: str, routers: Sequence[APIRouter],
            subscriptions: Sequence[Subscription] = (), undo: UndoRegistry = NO_UNDO) -> FastAPI:
    """A service's API process: its routers plus ops endpoints and the audit API; every state-changing call
    is audited, and `undo` says how the service's actions are compensated. The runtime starts in the
    background."""

    async def start() -> None:
        runtime.start_in_background(subscriptions)

    app = create_app(title=title, description=description, lifespan=lifespan_of(start, runtime.stop),
                     readiness=runtime.readiness, liveness=_liveness(runtime), routers=[*routers, audit_router],
                     max_body_bytes=runtime.settings.http_max_body_bytes)
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.state.audit = runtime_trail(runtime)
    app.state.audit_undo = undo
    return app


def worker_app(runtime: ServiceRuntime, subscriptions: Sequence[Subscription],
               extra: Sequence[Callable[[], Awaitable[None]]] = ()) -> Callable[[], None]:
    """A service's worker process: consumers and relay, with /healthz, /readyz, /metrics on the ops port."""

    async def start() -> None:
        runtime.start_in_background(subscriptions, extra)

    app = create_app(title=f"amiflow {runtime.settings.service_name} worker", description="operations only",
                     lifespan=lifespan_of(start, runtime.stop), readiness=runtime.readiness,
                     liveness=_liveness(runtime))
    return lambda: serve(app, runtime.settings, runtime.settings.resolved_ops_port)
