"""Composition root of commands: `python -m commands.main api|worker|migrate`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.process import api_app, service_main, worker_app
from amiflow_runtime.service import ServiceRuntime, Subscription
from amiflow_schemas.topics import topic_named
from fastapi import FastAPI

from commands.adapters import db
from commands.adapters.http import router
from commands.app import on_balance_event
from commands.config import CommandsSettings

MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.commands").name
BALANCE = topic_named("amiflow.billing.balance").name


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    return api_app(runtime, title="amiflow commands",
                   description="Remote valve and relay control: cut-off, restore, confirmation.",
                   routers=[router])


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """Consumes balance events into each account's supply intent."""
    return worker_app(build_runtime(settings, "worker"),
                      [Subscription("commands.balance", [BALANCE], on_balance_event)])


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=CommandsSettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
