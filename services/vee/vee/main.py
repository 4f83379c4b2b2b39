"""Composition root of VEE: `python -m vee.main api|worker|migrate`."""

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

from vee.adapters import db
from vee.adapters.alarms_http import router as alarms_router
from vee.adapters.districts_http import router as districts_router
from vee.adapters.fleet_http import router as fleet_router
from vee.adapters.http import router
from vee.adapters.rules_http import router as rules_router
from vee.adapters.undo import UNDO
from vee.config import VeeSettings
from vee.districts_app import evaluate_districts
from vee.registry_app import registry_batch_handler
from vee.series_app import estimate_silent_meters, series_batch_handler, status_handler

log = logging.getLogger("vee")
MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.vee").name
RECEIVED_READINGS = topic_named("amiflow.ingest.readings").name
REGISTRY = topic_named("amiflow.registry.devices").name
DEVICE_STATUS = topic_named("amiflow.ingest.device-status").name


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    """Read API over validated readings (the API relays nothing: the worker owns the outbox)."""
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    return api_app(runtime, title="amiflow vee", description="Validation, estimation and editing of meter readings.",
                   routers=[router, alarms_router, rules_router, districts_router, fleet_router], undo=UNDO)


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """The Faust stream processor: ReadingReceived → ReadingValidated."""
    assert isinstance(settings, VeeSettings)
    runtime = build_runtime(settings, "worker")
    app = faust_app(runtime, store=settings.faust_store, app_id=settings.faust_app_id)
    inbox_agent(app, runtime, RECEIVED_READINGS, "vee.validation",
                series_batch_handler(runtime.clock, settings.zone_of))
    inbox_agent(app, runtime, REGISTRY, "vee.registry", registry_batch_handler(runtime.clock, settings.zone_of))
    inbox_agent(app, runtime, DEVICE_STATUS, "vee.device-status", status_handler(runtime.clock, settings.zone_of))

    @app.timer(settings.estimation_interval_s)  # type: ignore[untyped-decorator]
    async def estimate_silent() -> None:
        # Every instance walks every series: idempotent (per-meter lock, deterministic core), only wasteful
        # beyond one instance; a leader lock is the next step when VEE scales out.
        if not runtime.started:
            return
        try:
            await estimate_silent_meters(runtime.sessions, runtime.clock, settings.zone_of, runtime.wake_relay)
        except Exception:  # a timer that raises crashes the whole Faust worker: a database blip must not
            log.exception("estimation pass failed; the next interval tries again")

    @app.timer(settings.district_interval_s)  # type: ignore[untyped-decorator]
    async def evaluate_district_days() -> None:
        # Idempotent per district (advisory lock, upserted days, alarms once per day).
        if not runtime.started:
            return
        try:
            await evaluate_districts(runtime.sessions, runtime.clock, settings.zone_of, runtime.wake_relay,
                                     timedelta(seconds=settings.district_close_delay_s))
        except Exception:  # as above
            log.exception("district pass failed; the next interval tries again")

    return run_worker(app, settings)


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=VeeSettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
