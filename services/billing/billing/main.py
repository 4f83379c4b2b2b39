"""Composition root of billing: `python -m billing.main api|worker|migrate`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.faustapp import faust_app, inbox_agent, run_worker
from amiflow_runtime.process import api_app, service_main
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.topics import topic_named
from fastapi import FastAPI

from billing.adapters import db
from billing.adapters.http import router
from billing.adapters.undo import UNDO
from billing.config import BillingSettings
from billing.reading_batch import reading_batch_handler
from billing.rebuild import rebuild_command
from billing.settlement_app import settle_all

log = logging.getLogger("billing")
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
                   description="Prepaid accounts, tariffs, rating and settlement.", routers=[router],
                   undo=UNDO)


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """The Faust stream processor: validated readings rated onto accounts; the daily settlement timer."""
    assert isinstance(settings, BillingSettings)
    runtime = build_runtime(settings, "worker")
    app = faust_app(runtime, store=settings.faust_store, app_id=settings.faust_app_id)
    inbox_agent(app, runtime, VALIDATED_READINGS, "billing.readings", reading_batch_handler(runtime.clock))

    @app.timer(settings.settlement_interval_s)  # type: ignore[untyped-decorator]
    async def settle_closed_days() -> None:
        # Safe on every instance: per-account lock, deterministic ids, one settlement row per (account, day).
        if not runtime.started:
            return
        concurrency = 1 if runtime.engine.dialect.name == "sqlite" else settings.settlement_concurrency
        try:
            await settle_all(runtime.sessions, runtime.clock, runtime.wake_relay,
                             timedelta(seconds=settings.settlement_delay_s), concurrency)
        except Exception:  # a timer that raises crashes the whole Faust worker: a database blip must not
            log.exception("settlement pass failed; the next interval tries again")

    return run_worker(app, settings)


def rebuild(settings: ServiceSettings) -> int:
    """Replay the billing topics into this (empty) database."""
    return rebuild_command(build_runtime(settings, "rebuild"))


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=BillingSettings, api=api, worker=worker, migrations_dir=MIGRATIONS,
                        tools={"rebuild": rebuild})


if __name__ == "__main__":
    sys.exit(main())
