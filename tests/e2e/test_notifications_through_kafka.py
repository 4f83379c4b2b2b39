"""Notifications end to end (issue 7): billing's and VEE's events reach a real notify worker through
the session's broker, and come out as e-mail on a real SMTP server (aiosmtpd) and as signed webhooks
on a real HTTP receiver.

Each test runs its own notify deployment: a PostgreSQL database of its own, the API in-process on
that database (contacts, subscriptions and the delivery log are read through it), and the worker as a
subprocess (`python -m notify.main worker`), so that it can be killed with SIGKILL. The tenant is
unique, and the worker consumes in a consumer group of its own (NOTIFY_CONSUMER_GROUP). The
session's `platform` fixture also runs a notify worker when other e2e tests use it. Under the
default group, "notify.triggers", the two workers would split the partitions, and this test's
events would sometimes go to the platform's worker. With its own group, the platform's worker still
reads the same events into its own database. That is harmless: no contact or subscription exists
there for this tenant, so it logs no notification for these events, and it has no e-mail provider
for the tenant either.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import asgi_client, create_database, unique
from amiflow_schemas import Envelope, EventPayload, decode_event, encode_event, envelope_headers, new_envelope
from amiflow_schemas.events.alarms import AlarmRaised
from amiflow_schemas.events.billing import BalanceLow
from amiflow_schemas.examples import example_payloads
from amiflow_schemas.topics import topic_named
from notify.config import NotifySettings
from notify.core.signing import webhook_signature
from notify.main import api

pytestmark = pytest.mark.e2e

BALANCE = topic_named("amiflow.billing.balance").name
ALARMS = topic_named("amiflow.vee.alarms").name
DELIVERIES = topic_named("amiflow.notify.deliveries").name
WAIT_S = 45.0  # a bound per step: worker start, a consumer-group rebalance after SIGKILL (~10 s), a few sends
ACCOUNT = "ACC-0001"
SENDER = "notify@riverside.example.cn"
CUSTOMER = "li.wei@example.cn"
T = TypeVar("T")


@dataclass
class Notify:
    """One notify deployment of a test: its API in-process, its worker a subprocess, one database."""

    tenant: str
    env: dict[str, str]
    api: httpx.AsyncClient
    log_file: Path
    worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        with open(self.log_file, "ab") as out:
            self.worker = subprocess.Popen([sys.executable, "-m", "notify.main", "worker"], env=self.env,
                                           stdout=out, stderr=subprocess.STDOUT)

    def kill_worker(self) -> None:
        """SIGKILL: no shutdown, no lease given back, no offset committed on the way out."""
        assert self.worker is not None and self.worker.poll() is None, "the worker was not running"
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(30)
        self.worker = None

    def stop_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            return
        self.worker.send_signal(signal.SIGTERM)
        try:
            self.worker.wait(30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    async def get(self, path: str, **params: str) -> Any:
        answer = await self.api.get(path, headers={"X-Tenant-Id": self.tenant}, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.api.post(path, headers={"X-Tenant-Id": self.tenant}, json=body)

    async def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.api.put(path, headers={"X-Tenant-Id": self.tenant}, json=body)

    async def eventually(self, check: Callable[[], Awaitable[T | None]], what: str) -> T:
        """``check``'s first truthy answer within WAIT_S; else fail with what was awaited and the worker's log."""
        deadline = time.monotonic() + WAIT_S
        while True:
            found = await check()
            if found:
                return found
            if self.worker is not None and self.worker.poll() is not None:
                raise AssertionError(f"the worker exited ({self.worker.returncode}) before {what}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {WAIT_S:.0f} s: {what}\nworker log:\n{self.logs()}")
            await asyncio.sleep(0.2)


Deploy = Callable[..., Awaitable[Notify]]


@pytest.fixture
async def deploy(kafka_bootstrap: str, postgres_admin_url: str, tmp_path: Path) -> AsyncIterator[Deploy]:
    """Factory: a notify deployment for a tenant, with the given NOTIFY_* settings; its worker not yet started."""
    made: list[tuple[Notify, Any]] = []

    async def make(tenant: str, **settings: str) -> Notify:
        database_url = await create_database(postgres_admin_url, "notifye2e")
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "AMIFLOW_ENV": "test",
               "AMIFLOW_DATA_DIR": str(tmp_path), "NOTIFY_DATABASE_URL": database_url,
               "NOTIFY_OPS_PORT": str(free_port()), "NOTIFY_CONSUMER_GROUP": f"notify.triggers.{tenant}",
               "NOTIFY_RETRY_BACKOFF_S": "1", "NOTIFY_RETRY_BACKOFF_MAX_S": "2", "NOTIFY_MAX_ATTEMPTS": "30",
               "NOTIFY_DELIVERY_INTERVAL_S": "0.2", "NOTIFY_LEASE_S": "5", **settings}
        app = api(NotifySettings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap))
        runtime = app.state.runtime
        await runtime.migrate()  # before the worker starts, so the two never migrate at once
        client = asgi_client(app, "http://notify")
        deployment = Notify(tenant, env, client, tmp_path / f"{tenant}-worker.log")
        made.append((deployment, runtime))
        return deployment

    yield make
    for deployment, runtime in made:
        deployment.stop_worker()
        await deployment.api.aclose()
        await runtime.engine.dispose()


async def publish(bootstrap: str, topic: str, payload: EventPayload, tenant: str, key: str, producer: str) -> uuid.UUID:
    """``payload`` on ``topic`` as its owning service publishes it (envelope, headers, partition key)."""
    now = datetime.now(UTC)
    envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=tenant, key=key, occurred_at=now,
                            recorded_at=now, producer=producer)
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await client.start()
    try:
        await client.send_and_wait(topic, encode_event(envelope), key=key.encode(), headers=envelope_headers(envelope))
    finally:
        await client.stop()
    event_id: uuid.UUID = envelope.event_id
    return event_id


async def deliveries_of(bootstrap: str, tenant: str, notification_id: str) -> list[Envelope[Any]]:
    """Every NotificationSent of ``tenant`` on the deliveries topic, once ``notification_id``'s is among them."""
    consumer = AIOKafkaConsumer(DELIVERIES, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    found: list[Envelope[Any]] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                found += [e for m in itertools.chain(*batches.values())
                          if (e := decode_event(m.value)).tenant_id == tenant]
                if not batches and any(str(e.event_id) == notification_id for e in found):
                    return found  # the one we wait for, and nothing more after a quiet second
    except TimeoutError:
        raise AssertionError(f"no NotificationSent {notification_id} on {DELIVERIES} within {WAIT_S:.0f} s; "
                             f"found {[str(e.event_id) for e in found]}") from None
    finally:
        await consumer.stop()


@dataclass
class MailBox:
    """An SMTP server's handler that keeps every message it accepts."""

    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.received.append(mail)
        return "250 2.0.0 queued"


async def test_an_email_sent_while_smtp_is_down_arrives_once_after_the_worker_is_killed_and_restarted(
        deploy: Deploy, kafka_bootstrap: str) -> None:
    smtp_port = free_port()  # nothing listens here until the server "comes back"
    tenant = unique("notify")
    notify = await deploy(tenant, NOTIFY_TENANT_CHANNELS=json.dumps({tenant: {"email": {
        "host": "127.0.0.1", "port": smtp_port, "security": "none", "from_address": SENDER, "from_name": "滨江水务",
        "timeout_s": 3}}}))
    saved = await notify.put("/v1/contacts/C-1", {"account_id": ACCOUNT, "email": CUSTOMER, "channels": ["email"],
                                                  "updated_by": "ops-1"})
    assert saved.status_code == 200, saved.text
    low: BalanceLow = example_payloads()["BalanceLow"].model_copy(update={"entered_at": datetime.now(UTC)})

    notify.start_worker()
    first = await publish(kafka_bootstrap, BALANCE, low, notify.tenant, ACCOUNT, "billing")

    async def held() -> dict[str, Any] | None:
        rows = await notify.get("/v1/notifications", account_id=ACCOUNT)
        return next((r for r in rows if r["status"] == "retrying" and r["attempts"] >= 1), None)

    waiting = await notify.eventually(held, "the reminder is logged as retrying after a failed send")
    notify.kill_worker()
    # Billing says it again while no worker runs: the same fact, the same local day, a new event id.
    second = await publish(kafka_bootstrap, BALANCE, low, notify.tenant, ACCOUNT, "billing")

    mailbox = MailBox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        notify.start_worker()

        async def settled() -> bool:
            triggers = {t["event_id"] for t in await notify.get("/v1/triggers", subject_id=ACCOUNT)}
            rows = await notify.get("/v1/notifications", account_id=ACCOUNT)
            return {str(first), str(second)} <= triggers and all(r["status"] == "sent" for r in rows)

        await notify.eventually(settled, "the restarted worker reads the second BalanceLow and sends the reminder")
        events = await deliveries_of(kafka_bootstrap, notify.tenant, waiting["notification_id"])
    finally:
        smtp.stop()

    rows = await notify.get("/v1/notifications", account_id=ACCOUNT)
    assert [(r["notification_id"], r["topic"]) for r in rows] == [(waiting["notification_id"], "balance_low")], \
        f"two BalanceLow on one day must give one reminder: {rows}"
    logged = rows[0]
    assert len(mailbox.received) == 1, f"one mail expected: {[m['Message-ID'] for m in mailbox.received]}"
    [mail] = mailbox.received
    assert mail["To"] == CUSTOMER and "余额不足" in str(mail["Subject"]), str(mail["Subject"])
    assert mail["Message-ID"] == f"<{uuid.UUID(logged['notification_id']).hex}@riverside.example.cn>"
    assert "余额" in mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]

    detail = await notify.get(f"/v1/notifications/{logged['notification_id']}")
    attempts = detail["delivery_attempts"]
    assert detail["status"] == "sent" and detail["attempts"] == len(attempts) >= 2, detail
    *failed, delivered = attempts
    assert all(not a["delivered"] and a["retryable"] and "unreachable" in a["provider_answer"] for a in failed), failed
    assert delivered["delivered"] and delivered["attempt"] == len(attempts), delivered
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))

    assert {str(e.event_id) for e in events} == {logged["notification_id"]}, "one NotificationSent, for this mail"
    sent = events[0].payload
    assert (sent.channel.value, sent.template.value, sent.account_id, sent.attempt) == (
        "email", "balance_low", ACCOUNT, len(attempts))
    assert sent.destination_masked == "l***@example.cn" and str(sent.trigger_event_id) == str(first)


@dataclass
class WebhookReceiver:
    """An integrator's endpoint: keeps every request and answers with the next scripted status (200 after)."""

    statuses: Iterator[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            part = await receive()
            body, more = body + part.get("body", b""), part.get("more_body", False)
        self.received.append(({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": next(self.statuses, 200),
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[WebhookReceiver, str]]:
    """A real HTTP server on 127.0.0.1 (in the test's event loop) answering 500, 500, then 200; and its URL."""
    port = free_port()
    app = WebhookReceiver(iter([500, 500]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           timeout_graceful_shutdown=1))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the webhook receiver did not start"
        await asyncio.sleep(0.01)
    try:
        yield app, f"http://127.0.0.1:{port}/hooks/amiflow"
    finally:
        server.should_exit = True
        await serving


async def test_a_webhook_answered_500_twice_then_200_gets_three_signed_deliveries_of_one_alarm(
        deploy: Deploy, kafka_bootstrap: str, receiver: tuple[WebhookReceiver, str]) -> None:
    hook, url = receiver
    notify = await deploy(unique("notify"), NOTIFY_ALARM_DIGEST_WINDOW_S="0")
    subscribed = await notify.post("/v1/webhook-subscriptions", {
        "subscription_id": "erp", "url": url, "topics": ["alarm_raised"], "created_by": "integrator-1"})
    assert subscribed.status_code == 201, subscribed.text
    secret = subscribed.json()["secret"].encode()
    alarm: AlarmRaised = example_payloads()["AlarmRaised"]

    notify.start_worker()
    raised = await publish(kafka_bootstrap, ALARMS, alarm, notify.tenant, alarm.subject_id, "vee")

    async def sent() -> list[dict[str, Any]]:
        return list(await notify.get("/v1/notifications", status="sent"))

    delivered = await notify.eventually(sent, "the webhook is delivered on its third attempt")
    assert len(delivered) == 1, f"one alarm, one subscription: one notification expected: {delivered}"
    logged = delivered[0]

    assert len(hook.received) == 3, [h.get("x-amiflow-delivery") for h, _ in hook.received]
    for headers, body in hook.received:
        assert headers["x-amiflow-signature"] == webhook_signature(secret, headers["x-amiflow-timestamp"], body)
        assert headers["x-amiflow-delivery"] == logged["notification_id"]  # the same id: receivers drop repeats
        payload = json.loads(body)
        assert (payload["tenant_id"], payload["topic"], payload["cause_event_id"]) == (
            notify.tenant, "alarm_raised", str(raised))
        assert payload["event"]["alarm_id"] == str(alarm.alarm_id)
    detail = await notify.get(f"/v1/notifications/{logged['notification_id']}")
    assert [(a["attempt"], a["delivered"], a["retryable"]) for a in detail["delivery_attempts"]] == [
        (1, False, True), (2, False, True), (3, True, False)], detail["delivery_attempts"]
    assert "500" in detail["delivery_attempts"][0]["provider_answer"]
    assert (detail["status"], detail["attempts"], detail["recipient_id"]) == ("sent", 3, "erp")
