"""Kafka security end to end: a broker with SASL_SSL, SCRAM-SHA-512, mutual TLS and ACLs, and the
runtime's own clients on it (idempotent producer, inbox consumer, outbox relay, admin, Faust)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest
from amiflow_runtime.clock import SystemClock
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.consumer import InboxConsumer
from amiflow_runtime.db import inbox_table, make_engine, outbox_table, sessions
from amiflow_runtime.deadletter import DeadLetters
from amiflow_runtime.faustapp import faust_kafka_options
from amiflow_runtime.kafka import KafkaSecurityError, client_options, ensure_topics, make_producer, wait_for_kafka
from amiflow_runtime.localkafka import BrokerSecurity, LocalKafka, free_port
from amiflow_runtime.outbox import OutboxRelay
from amiflow_runtime.pipeline import EventPipeline
from amiflow_runtime.testing import unique
from amiflow_schemas import Envelope, encode_event, new_envelope
from amiflow_schemas.events.readings import ReadingReceived, ReadingValidated, ValidationStatus
from amiflow_schemas.topics import topic_named
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.integration

READINGS = topic_named("amiflow.ingest.readings")
VALIDATED = topic_named("amiflow.vee.readings")
VEE_DEAD_LETTERS = topic_named("amiflow.dlq.vee")
LEDGER = topic_named("amiflow.billing.ledger")  # a topic the vee user has no ACL for

metadata = MetaData()
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

# Kafka's wire codes for ACL bindings (org.apache.kafka.common.acl / resource).
ANY = 1
TOPIC, GROUP = 2, 3
LITERAL, PREFIXED = 3, 4
READ, WRITE = 3, 4
ALLOW = 3


@dataclass(frozen=True)
class SecuredCluster:
    """The secured broker and the client files every connection to it needs."""

    broker: LocalKafka
    client_certificate: Path
    client_key: Path
    client_key_password: str

    def settings(self, user: str, **overrides: Any) -> ServiceSettings:
        """Settings of a process connecting as `user` with the client certificate (mutual TLS is required)."""
        env: dict[str, Any] = {**self.broker.client_environment(user),
                               "KAFKA_SSL_CERTFILE": self.client_certificate, "KAFKA_SSL_KEYFILE": self.client_key,
                               "KAFKA_SSL_KEY_PASSWORD": self.client_key_password, "KAFKA_CONNECT_TIMEOUT_S": 60}
        env.update(overrides)
        return ServiceSettings(**{k: v for k, v in env.items() if v is not None})


async def grant(admin: ServiceSettings, user: str, *acls: tuple[int, str, int, int]) -> None:
    """Allow `user` each (resource type, name, pattern, operation) and wait until the broker enforces them.

    aiokafka's admin client has no create_acls, but its protocol module has the requests. The
    controller acknowledges an ACL before the broker has applied it from the metadata log, so this
    waits until the broker's authorizer describes every one.
    """
    client = AIOKafkaClient(**client_options(admin), client_id="acl-admin")
    await client.bootstrap()
    try:
        node = client.get_random_node()
        for resource_type, name, pattern, operation in acls:
            response = await client.send(node, CreateAclsRequest(
                resource_type, name, pattern, f"User:{user}", "*", operation, ALLOW))
            for error_code, error_message in response.creation_responses:
                assert error_code == 0, f"ACL {name} for {user}: {error_code} {error_message}"
        for _ in range(100):
            described = await client.send(node, DescribeAclsRequest(ANY, None, ANY, f"User:{user}", None, ANY, ANY))
            if sum(len(resource[-1]) for resource in described.resources) >= len(acls):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the broker never applied the ACLs of {user}")
    finally:
        await client.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    """A broker of its own in the secured mode: topics made and ACLs granted by the admin user."""
    users = {"ingest": secrets.token_urlsafe(16), "vee": secrets.token_urlsafe(16)}
    broker = LocalKafka(home=tmp_path_factory.mktemp("kafka-secured"), port=free_port(),
                        security=BrokerSecurity(admin_password=secrets.token_urlsafe(16), users=users,
                                                client_auth="required"))
    broker.start()
    try:
        key_password = secrets.token_urlsafe(12)
        certificate, key = broker.issue_client_certificate("amiflow-tests", key_password=key_password)
        cluster = SecuredCluster(broker, certificate, key, key_password)
        asyncio.run(_provision(cluster.settings("admin")))
        yield cluster
    finally:
        broker.stop()


async def _provision(admin: ServiceSettings) -> None:
    await ensure_topics(admin, [READINGS, VALIDATED, VEE_DEAD_LETTERS, LEDGER])
    # What the deployment grants (deploy/kafka-acls.md): ingest writes readings; vee reads them in its
    # own groups and writes validated readings and its dead letters. Nothing else.
    await grant(admin, "ingest", (TOPIC, READINGS.name, LITERAL, WRITE))
    await grant(admin, "vee", (TOPIC, READINGS.name, LITERAL, READ), (GROUP, "vee.", PREFIXED, READ),
                (GROUP, "amiflow-vee", PREFIXED, READ), (TOPIC, VALIDATED.name, LITERAL, WRITE),
                (TOPIC, VEE_DEAD_LETTERS.name, LITERAL, WRITE))


def reading(meter_id: str) -> Envelope[Any]:
    measured = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    payload = ReadingReceived.model_validate({
        "meter_id": meter_id, "utility": "water", "measured_at": measured,
        "registers": [{"register": "total", "value": "12.5", "unit": "m3"}], "source": "http", "gateway_id": None,
    })
    return new_envelope(payload, event_id=uuid.uuid4(), tenant_id="demo", key=meter_id, occurred_at=measured,
                        recorded_at=measured, producer="test")


async def validate(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """The test's handler: every reading comes out validated, through the outbox."""
    received: ReadingReceived = envelope.payload
    out = ReadingValidated(
        meter_id=received.meter_id, utility=received.utility, measured_at=received.measured_at,
        registers=received.registers, consumption=None, consumption_unit=None, previous_measured_at=None,
        status=ValidationStatus.ACTUAL, estimation_method=None, source_event_id=envelope.event_id,
    )
    return [new_envelope(out, event_id=uuid.uuid4(), tenant_id=envelope.tenant_id, key=received.meter_id,
                         occurred_at=received.measured_at, recorded_at=received.measured_at, producer="test",
                         causation_id=envelope.event_id)]


async def publish(settings: ServiceSettings, topic: str, envelope: Envelope[Any]) -> None:
    producer = make_producer(settings, client_id=unique("producer"))
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode_event(envelope), key=envelope.key.encode())
    finally:
        await producer.stop()


async def find_record(settings: ServiceSettings, topic: str, key: str, timeout_s: float = 60.0) -> Any:
    consumer = AIOKafkaConsumer(topic, **client_options(settings), group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for message in (m for ms in batches.values() for m in ms):
                if message.key == key.encode():
                    return message
    finally:
        await consumer.stop()
    raise AssertionError(f"no record keyed {key} on {topic}")


@pytest.fixture
async def vee_pipeline(secured: SecuredCluster, tmp_path: Path) -> AsyncIterator[tuple[ServiceSettings, Any]]:
    """The vee user's producer, outbox relay and the parts of a pipeline, on an embedded database."""
    settings = secured.settings("vee")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'vee.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    producer = make_producer(settings, client_id="vee-worker")
    await producer.start()
    relay = OutboxRelay(engine, outbox, producer, service=unique("vee"))
    relay_task = asyncio.create_task(relay.run())

    def pipeline(group: str) -> EventPipeline:
        return EventPipeline(consumer=group, sessions=sessions(engine), inbox=inbox, outbox=outbox, handler=validate,
                             dead_letters=DeadLetters(producer, VEE_DEAD_LETTERS.name, group), clock=SystemClock(),
                             on_staged=relay.wake)

    yield settings, pipeline
    relay.stop()
    await asyncio.wait_for(relay_task, 30)
    await producer.stop()
    await engine.dispose()


async def test_service_users_produce_and_consume_their_own_topics_over_sasl_ssl_and_scram(
        secured: SecuredCluster, vee_pipeline: tuple[ServiceSettings, Any]) -> None:
    settings, pipeline = vee_pipeline
    await wait_for_kafka(settings, "vee-test")
    meter = unique("meter")
    await publish(secured.settings("ingest"), READINGS.name, reading(meter))

    consumer = InboxConsumer(settings, [READINGS.name], pipeline(unique("vee.validation")))
    task = asyncio.create_task(consumer.run())
    try:
        validated = await find_record(secured.settings("admin"), VALIDATED.name, meter)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
    assert dict(validated.headers)["event_type"] == b"ReadingValidated"


async def test_a_service_user_is_refused_a_topic_it_has_no_acl_for(secured: SecuredCluster) -> None:
    producer = make_producer(secured.settings("vee"), client_id="vee-intruder")
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=LEDGER.name):
            # The guard turns a hang into a failure; the refusal itself comes back at once.
            await asyncio.wait_for(producer.send_and_wait(LEDGER.name, b"{}", key=b"x"), 60)
    finally:
        await producer.stop()


async def test_an_inbox_consumer_without_read_on_its_topic_stops_with_an_authorization_error(
        secured: SecuredCluster, vee_pipeline: tuple[ServiceSettings, Any]) -> None:
    settings, pipeline = vee_pipeline
    consumer = InboxConsumer(settings, [LEDGER.name], pipeline(unique("vee.accounts")))
    with pytest.raises(TopicAuthorizationFailedError):
        await asyncio.wait_for(consumer.run(), 60)
    assert not consumer.ready


async def test_a_consumer_group_outside_the_users_acls_is_refused(
        secured: SecuredCluster, vee_pipeline: tuple[ServiceSettings, Any]) -> None:
    settings, pipeline = vee_pipeline
    consumer = InboxConsumer(settings, [READINGS.name], pipeline(unique("billing.readings")))
    with pytest.raises(GroupAuthorizationFailedError):
        await asyncio.wait_for(consumer.run(), 60)


async def test_a_wrong_password_is_refused_with_an_authentication_error(secured: SecuredCluster) -> None:
    settings = secured.settings("vee", KAFKA_SASL_PASSWORD="not-" + secrets.token_urlsafe(8))
    with pytest.raises(KafkaSecurityError, match="refused the authentication of user 'vee'") as refused:
        await wait_for_kafka(settings, "vee-test")
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() not in str(refused.value)


async def test_a_client_without_the_clusters_ca_fails_tls_verification(secured: SecuredCluster) -> None:
    settings = secured.settings("vee", KAFKA_SSL_CAFILE=None)  # the system's CAs never signed this broker
    with pytest.raises(KafkaSecurityError, match="failed verification"):
        await wait_for_kafka(settings, "vee-test")


async def test_a_client_without_a_certificate_is_refused_when_mutual_tls_is_required(
        secured: SecuredCluster) -> None:
    settings = secured.settings("vee", KAFKA_SSL_CERTFILE=None, KAFKA_SSL_KEYFILE=None, KAFKA_SSL_KEY_PASSWORD=None)
    with pytest.raises(KafkaSecurityError, match="rejected this client's TLS certificate"):
        await wait_for_kafka(settings, "vee-test")


async def test_a_faust_app_consumes_over_sasl_ssl(secured: SecuredCluster, tmp_path: Path) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    app = faust.App(unique("amiflow-vee"), **faust_kafka_options(secured.settings("vee")), store="memory://",
                    datadir=str(tmp_path / "faust"), web_enabled=False)

    async def take(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await received.put(event.message.key)

    app.agent(app.topic(READINGS.name, value_serializer="raw", key_serializer="raw"), name="take")(take)
    meter = unique("meter")
    await app.start()
    try:
        await publish(secured.settings("ingest"), READINGS.name, reading(meter))
        while (key := await asyncio.wait_for(received.get(), 90)) != meter.encode():
            pass  # earlier tests' readings come first: the group reads from the start
    finally:
        await app.stop()
    assert key == meter.encode()
