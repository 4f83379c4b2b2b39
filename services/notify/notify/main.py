"""Composition root of notify: `python -m notify.main api|worker|migrate`."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.process import api_app, service_main, worker_app
from amiflow_runtime.service import ServiceRuntime, Subscription
from amiflow_schemas.topics import topic_named
from fastapi import FastAPI

from notify.adapters import db
from notify.adapters.http import router
from notify.adapters.undo import UNDO
from notify.app import gather_digests, notification_handler, send_reminders
from notify.config import NotifySettings
from notify.core.model import Notification
from notify.core.triggers import NOTIFIED_EVENTS
from notify.delivery import Deliverer

log = logging.getLogger("notify")
MIGRATIONS = Path(__file__).parent / "migrations"
DEAD_LETTERS = topic_named("amiflow.dlq.notify").name
SOURCES = [topic_named(name).name for name in
           ("amiflow.billing.balance", "amiflow.billing.ledger", "amiflow.vee.alarms", "amiflow.commands.lifecycle")]
REMINDER_INTERVAL_S = 60.0


def build_runtime(settings: ServiceSettings, role: str) -> ServiceRuntime:
    return ServiceRuntime(settings=settings, role=role, migrations_dir=MIGRATIONS, inbox=db.inbox,
                          outbox=db.outbox, dead_letter_topic=DEAD_LETTERS)


def api(settings: ServiceSettings) -> FastAPI:
    runtime = build_runtime(settings, "api")
    runtime.relay_outbox = False
    return api_app(runtime, title="amiflow notify",
                   description="Reminders, receipts, bills and alarms to customers and operators.",
                   routers=[router], undo=UNDO)


def worker(settings: ServiceSettings) -> Callable[[], None]:
    """Plans notifications from events, and delivers them: the delivery loop, reminders and digests."""
    assert isinstance(settings, NotifySettings)
    runtime = build_runtime(settings, "worker")

    async def deliveries() -> None:
        async with httpx.AsyncClient() as http:
            deliverer = Deliverer(runtime, settings, http, dead_letter=_dead_letter(runtime))
            while True:
                try:
                    await gather_digests(runtime.sessions, runtime.clock, settings)
                    busy = await deliverer.deliver_due()
                except Exception:
                    log.exception("delivery pass failed; retrying")
                    busy = 0
                if not busy:
                    await asyncio.sleep(settings.delivery_interval_s)

    async def reminders() -> None:
        while True:
            try:
                await send_reminders(runtime.sessions, runtime.clock, settings)
            except Exception:
                log.exception("reminder pass failed; retrying")
            await asyncio.sleep(REMINDER_INTERVAL_S)

    handler = notification_handler(runtime.clock, settings)
    return worker_app(runtime, [Subscription(settings.consumer_group, SOURCES, handler, NOTIFIED_EVENTS)],
                      [deliveries, reminders])


def _dead_letter(runtime: ServiceRuntime) -> Callable[[Notification, str], Awaitable[None]]:
    async def dead_letter(notification: Notification, reason: str) -> None:
        # The log keeps the notification as "dead" with the reason; the dead-letter topic tells operators.
        assert runtime.producer is not None
        record = {"notification_id": str(notification.notification_id), "tenant_id": notification.tenant_id,
                  "topic": notification.topic.value, "channel": notification.recipient.channel.value,
                  "recipient_id": notification.recipient.recipient_id, "reason": reason}
        await runtime.producer.send_and_wait(DEAD_LETTERS, json.dumps(record).encode(),
                                             key=notification.recipient.recipient_id.encode(),
                                             headers=[("dlq.reason", reason.encode()[:1000]),
                                                      ("dlq.kind", b"delivery_failed"),
                                                      ("dlq.consumer", b"notify.delivery"),
                                                      ("dlq.failed_at", runtime.clock.now().isoformat().encode())])

    return dead_letter


def main(argv: list[str] | None = None) -> int:
    return service_main(argv, settings=NotifySettings, api=api, worker=worker, migrations_dir=MIGRATIONS)


if __name__ == "__main__":
    sys.exit(main())
