"""Composition root of commands: `python -m commands.main api|worker|migrate`."""

from __future__ import annotations

import asyncio
import logging
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
from commands.adapters.undo import UNDO
from commands.app import (
    ACCOUNT_EVENTS,
    BALANCE_EVENTS,
    account_handler,
    alarm_handler,
    balance_handler,
    fire_due,
    lifecycle_handler,
    registry_handler,
    status_handler,
)
from commands.config import CommandsSettings

log = logging.getLogger("commands")
MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.commands").name
BALANCE = topic_named("amiflow.billing.balance").name
LIFECYCLE = topic_named("amiflow.commands.lifecycle").name
DEVICE_STATUS = topic_named("amiflow.ingest.device-status").name
REGISTRY = topic_named("amiflow.registry.devices").name
ALARMS = topic_named("amiflow.vee.alarms").name
ACCOUNTS = topic_named("amiflow.billing.ledger").name


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    return api_app(runtime, title="amiflow commands",
                   description="Remote valve and relay control: cut-off, restore, confirmation.",
                   routers=[router], undo=UNDO)


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """Balance states, registry, ingest's replies and read-backs, alarms; and the command timer."""
    assert isinstance(settings, CommandsSettings)
    runtime = build_runtime(settings, "worker")
    clock = runtime.clock

    async def command_timer() -> None:
        # Every instance may run it: each command moves under its device's lock and only if still due.
        while True:
            try:
                await fire_due(runtime.sessions, runtime.clock, settings, runtime.wake_relay)
            except Exception:
                log.exception("command timer pass failed; retrying")
            await asyncio.sleep(settings.timer_interval_s)

    return worker_app(runtime, [
        Subscription("commands.balance", [BALANCE], balance_handler(clock, settings), BALANCE_EVENTS),
        Subscription("commands.registry", [REGISTRY], registry_handler(clock)),
        Subscription("commands.lifecycle", [LIFECYCLE], lifecycle_handler(clock, settings)),
        Subscription("commands.device-status", [DEVICE_STATUS], status_handler(clock, settings)),
        Subscription("commands.alarms", [ALARMS], alarm_handler(clock, settings)),
        Subscription("commands.accounts", [ACCOUNTS], account_handler(clock, settings), ACCOUNT_EVENTS),
    ], [command_timer])


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=CommandsSettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
