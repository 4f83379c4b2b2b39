"""Composition root of billing: `python -m billing.main api|worker|migrate`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.process import api_app, service_main, worker_app
from amiflow_runtime.service import ServiceRuntime, Subscription
from amiflow_schemas.topics import topic_named
from fastapi import FastAPI

from billing.adapters import db
from billing.adapters.http import router
from billing.app import on_reading_validated
from billing.config import BillingSettings

MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.billing").name
VALIDATED_READINGS = topic_named("amiflow.vee.readings").name


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    return api_app(runtime, title="amiflow billing",
                   description="Prepaid accounts, tariffs, rating and settlement.", routers=[router])


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """Consumes validated readings into billing's projections."""
    return worker_app(build_runtime(settings, "worker"),
                      [Subscription("billing.readings", [VALIDATED_READINGS], on_reading_validated)])


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=BillingSettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
