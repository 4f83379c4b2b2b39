"""Notify's worker and API on SQLite and PostgreSQL against a real SMTP server and a real HTTP receiver: one
low-balance reminder per account and day, an e-mail held while the SMTP server is down and delivered once it
is back (across a worker restart and a crashed send), a webhook retried after two 500s with every delivery
signed, a template that cannot render failed rather than half-sent, and the delivery log and contacts API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.localkafka import free_port
from amiflow_runtime.testing import asgi_client
from amiflow_schemas import new_envelope
from amiflow_schemas.events.alarms import AlarmRaised
from amiflow_schemas.events.billing import BalanceLow
from amiflow_schemas.examples import example_payloads
from notify.adapters import store
from notify.app import notification_handler, send_reminders
from notify.config import NotifySettings
from notify.core.model import Audience, Channel, Notification, Recipient, Topic, Urgency
from notify.core.signing import webhook_signature
from notify.delivery import Deliverer
from notify.main import api

from .conftest import Answer, HttpServer, MailServer

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
TENANT = "riverside"
HEADERS = {"X-Tenant-Id": TENANT}
MORNING = datetime(2026, 11, 23, 9, 30, tzinfo=ZONE)


@dataclass
class Notify:
    runtime: Any
    settings: NotifySettings
    http: httpx.AsyncClient  # the API over ASGI
    client: httpx.AsyncClient  # the worker's outgoing HTTP
    smtp_port: int

    def at(self, moment: datetime) -> None:
        self.runtime.clock = FrozenClock(moment)

    def deliverer(self) -> Deliverer:
        """A worker's delivery loop (a new one is a restarted worker: no state but the database)."""
        return Deliverer(self.runtime, self.settings, self.client)

    async def event(self, payload: Any) -> uuid.UUID:
        now = self.runtime.clock.now()
        envelope = new_envelope(payload, event_id=uuid.uuid4(), tenant_id=TENANT, key="k", occurred_at=now,
                                recorded_at=now, producer="billing")
        async with self.runtime.sessions() as session, session.begin():
            await notification_handler(self.runtime.clock, self.settings)(session, envelope)
        return envelope.event_id

    async def log(self, **query: str) -> list[dict[str, Any]]:
        answer = await self.http.get("/v1/notifications", headers=HEADERS, params=query)
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    async def contact(self, contact_id: str, **fields: Any) -> httpx.Response:
        return await self.http.put(f"/v1/contacts/{contact_id}", headers=HEADERS,
                                   json={"updated_by": "ops-1", **fields})


@pytest.fixture
async def notify(database_url: str) -> AsyncIterator[Notify]:
    smtp_port = free_port()
    settings = NotifySettings(
        database_url=database_url, time_zone="Asia/Shanghai", retry_backoff_s=10, max_attempts=4,
        tenant_channels={TENANT: {"email": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                                            "from_address": "notify@riverside.example.cn", "from_name": "滨江水务",
                                            "timeout_s": 3}}})
    app = api(settings)
    runtime = app.state.runtime
    runtime.clock = FrozenClock(MORNING)
    await runtime.migrate()
    async with asgi_client(app, "http://notify") as http, \
            httpx.AsyncClient() as client:
        yield Notify(runtime, settings, http, client, smtp_port)
    await runtime.engine.dispose()


def low(entered_at: datetime) -> BalanceLow:
    return example_payloads()["BalanceLow"].model_copy(update={"entered_at": entered_at})


async def test_balance_low_twice_on_one_day_gives_one_reminder_and_the_next_day_another(notify: Notify) -> None:
    assert (await notify.contact("C-1", account_id="ACC-0001", email="li.wei@example.cn",
                                 channels=["email"])).status_code == 200
    await notify.event(low(MORNING - timedelta(hours=1)))
    await notify.event(low(MORNING - timedelta(minutes=5)))  # billing's event again (a redelivery)
    assert await send_reminders(notify.runtime.sessions, notify.runtime.clock, notify.settings) == 0  # told today
    assert [(n["topic"], n["status"]) for n in await notify.log(account_id="ACC-0001")] == [("balance_low", "queued")]

    notify.at(MORNING + timedelta(days=1))  # still low the next morning
    assert await send_reminders(notify.runtime.sessions, notify.runtime.clock, notify.settings) == 1
    assert await send_reminders(notify.runtime.sessions, notify.runtime.clock, notify.settings) == 0
    assert sorted(n["topic"] for n in await notify.log(account_id="ACC-0001")) == ["balance_low",
                                                                                   "low_balance_reminder"]


async def test_an_email_waits_out_an_smtp_outage_and_a_worker_restart_and_is_delivered_once(notify: Notify) -> None:
    await notify.contact("C-1", account_id="ACC-0001", email="li.wei@example.cn", channels=["email"])
    await notify.event(low(MORNING))
    assert await notify.deliverer().deliver_due() == 1  # the SMTP server is down
    [held] = await notify.log()
    assert (held["status"], held["attempts"]) == ("retrying", 1) and held["next_attempt_at"] is not None

    mail = MailServer()
    controller = Controller(mail, hostname="127.0.0.1", port=notify.smtp_port)
    controller.start()
    try:
        notify.at(MORNING + timedelta(seconds=11))
        async with notify.runtime.sessions() as session, session.begin():  # a worker takes it, then crashes
            [row] = await store.due(session, notify.runtime.clock.now(), 10)
            await store.lease(session, TENANT, row.notification_id, notify.runtime.clock.now() + timedelta(minutes=2))
        assert await notify.deliverer().deliver_due() == 0  # held by the crashed worker until its lease ends
        notify.at(MORNING + timedelta(minutes=3))
        assert await notify.deliverer().deliver_due() == 1  # a restarted worker
    finally:
        controller.stop()
    assert [m.recipients for m in mail.received] == [["li.wei@example.cn"]]
    assert "余额" in str(mail.received[0].mail["Subject"])
    detail = (await notify.http.get(f"/v1/notifications/{held['notification_id']}", headers=HEADERS)).json()
    assert (detail["status"], detail["attempts"]) == ("sent", 2)
    assert [a["delivered"] for a in detail["delivery_attempts"]] == [False, True]


async def test_a_webhook_answered_500_twice_gets_three_signed_deliveries(notify: Notify,
                                                                         http_server: HttpServer) -> None:
    subscribed = await notify.http.post("/v1/webhook-subscriptions", headers=HEADERS, json={
        "subscription_id": "erp", "url": f"{http_server.base_url}/hooks/amiflow", "topics": ["alarm_raised"],
        "created_by": "integrator-1"})
    assert subscribed.status_code == 201, subscribed.text
    secret = subscribed.json()["secret"]
    statuses = iter([500, 500, 200])
    http_server.respond = lambda request: Answer(next(statuses))
    alarm: AlarmRaised = example_payloads()["AlarmRaised"]
    await notify.event(alarm)
    for step in range(3):
        notify.at(MORNING + timedelta(minutes=5 * step))
        assert await notify.deliverer().deliver_due() == 1
    deliveries = http_server.on("/hooks/amiflow")
    assert len(deliveries) == 3
    for request in deliveries:
        expected = webhook_signature(secret.encode(), request.headers["x-amiflow-timestamp"], request.body)
        assert request.headers["x-amiflow-signature"] == expected
    assert len({r.headers["x-amiflow-delivery"] for r in deliveries}) == 1  # one notification, three attempts
    [sent] = await notify.log(status="sent")
    detail = (await notify.http.get(f"/v1/notifications/{sent['notification_id']}", headers=HEADERS)).json()
    assert [(a["attempt"], a["delivered"], a["retryable"]) for a in detail["delivery_attempts"]] == [
        (1, False, True), (2, False, True), (3, True, False)]


async def test_a_notification_whose_template_cannot_render_fails_with_the_reason(notify: Notify) -> None:
    now = notify.runtime.clock.now()
    broken = Notification(
        notification_id=uuid.uuid4(), tenant_id=TENANT, topic=Topic.STATEMENT_ISSUED,
        recipient=Recipient("C-1", Audience.CUSTOMER, Channel.EMAIL, "li.wei@example.cn"), subject_id="ACC-0001",
        account_id="ACC-0001", dedupe_key="statement:ACC-0001:2026-10", urgency=Urgency.ROUTINE, not_before=now,
        cause_event_id=uuid.uuid4(), created_at=now, context={})
    async with notify.runtime.sessions() as session, session.begin():
        assert await store.enqueue(session, broken, now)
    await notify.deliverer().deliver_due()
    [failed] = await notify.log(status="failed")
    assert failed["reason"].startswith("template failed") and failed["attempts"] == 0


async def test_contacts_are_checked_when_saved_and_opt_outs_suppress_routine_topics(notify: Notify) -> None:
    bad_phone = await notify.contact("C-2", account_id="ACC-0002", phone="12345")
    assert bad_phone.status_code == 422 and "phone" in bad_phone.text
    bad_email = await notify.contact("C-2", account_id="ACC-0002", email="not-an-address")
    assert bad_email.status_code == 422
    saved = await notify.contact("C-2", account_id="ACC-0002", phone="+86 138 0013 8000", channels=["sms"],
                                 opted_out=["balance_low"], language="en")
    assert saved.status_code == 200 and saved.json()["contact"]["phone"] == "+8613800138000"
    await notify.event(low(MORNING).model_copy(update={"account_id": "ACC-0002"}))
    [suppressed] = await notify.log(account_id="ACC-0002")
    assert suppressed["status"] == "suppressed" and "opted out" in suppressed["reason"]
    assert (await notify.http.get("/v1/contacts/NOPE", headers=HEADERS)).status_code == 404


async def test_an_account_holder_sets_their_own_contact_preferences_and_no_one_elses(notify: Notify) -> None:
    from amiflow_runtime.testing import auth_headers

    holder = {**auth_headers(TENANT, ("customer",), account_id="ACC-0007", subject="cust-7"), **HEADERS}
    wanted = {"email": "li.wei@example.cn", "channels": ["email"], "language": "en", "quiet_start": "21:00",
              "quiet_end": "08:00", "opted_out": ["balance_low"]}
    saved = await notify.http.put("/v1/accounts/ACC-0007/contacts/C-7", json=wanted, headers=holder)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert (body["account_id"], body["audience"], body["updated_by"]) == ("ACC-0007", "customer", "cust-7")
    assert body["contact"]["opted_out"] == ["balance_low"]
    mine = await notify.http.get("/v1/accounts/ACC-0007/contacts", headers=holder)
    assert [c["contact_id"] for c in mine.json()] == ["C-7"]
    # The same checks as staff's route, answered with the reason.
    bad = await notify.http.put("/v1/accounts/ACC-0007/contacts/C-7", json={"email": "nope"}, headers=holder)
    assert bad.status_code == 422 and "email" in bad.text.lower()
    # Another account's path, or another account's contact id under one's own path: not found.
    other = await notify.http.put("/v1/accounts/ACC-0008/contacts/C-8", json=wanted, headers=holder)
    assert other.status_code == 404
    await notify.contact("C-8", account_id="ACC-0008", email="someone@example.cn")
    hijack = await notify.http.put("/v1/accounts/ACC-0007/contacts/C-8", json=wanted, headers=holder)
    assert hijack.status_code == 404
    assert (await notify.http.get("/v1/contacts/C-8", headers=HEADERS)).json()["account_id"] == "ACC-0008"
    # A customer still cannot use staff's route.
    staff_route = await notify.http.put("/v1/contacts/C-7", json={**wanted, "account_id": "ACC-0007",
                                                                  "updated_by": "cust-7"}, headers=holder)
    assert staff_route.status_code == 403
