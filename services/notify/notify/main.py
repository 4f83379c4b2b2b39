"""Composition root of notify: `python -m notify.main api|worker|migrate`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.process import api_app, service_main, worker_app
from amiflow_runtime.service import ServiceRuntime, Subscription
from amiflow_schemas.topics import topic_named
from fastapi import FastAPI

from notify.adapters import db
from notify.adapters.http import router
from notify.app import trigger_handler
from notify.config import NotifySettings

MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.notify").name
SOURCES = [topic_named(name).name for name in
           ("amiflow.billing.balance", "amiflow.billing.ledger", "amiflow.vee.alarms", "amiflow.commands.lifecycle")]


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    return api_app(runtime, title="amiflow notify",
                   description="Reminders, receipts, bills and alarms to customers and operators.",
                   routers=[router])


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """Consumes the events that call for notifications."""
    runtime = build_runtime(settings, "worker")
    return worker_app(runtime, [Subscription("notify.triggers", SOURCES, trigger_handler(runtime.clock))])


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=NotifySettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
