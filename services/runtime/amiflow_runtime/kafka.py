"""Kafka clients configured from settings: idempotent producer, topics from the registry, broker wait.

Every client the runtime and the services create (producers, consumers, admin clients, Faust apps)
takes its connection and security options from `client_options`, so TLS and SASL are set in one place.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)

from amiflow_runtime.config import ServiceSettings

log = logging.getLogger("amiflow.kafka")


class TopicLike(Protocol):
    """What topic creation needs of a registry entry (amiflow_schemas.topics.TopicSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def cleanup_policy(self) -> str: ...
    @property
    def retention_ms(self) -> int: ...


class KafkaSecurityError(RuntimeError):
    """The cluster is there but the connection is refused for security: credentials or certificates.

    Unlike an unreachable broker, waiting cannot fix this, so it ends the wait at once.
    """


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client.

    The result holds the SASL password in clear: hand it to a client, never to a log line.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism:  # settings guarantee a SASL protocol, a username and a password
        assert settings.kafka_sasl_password is not None
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL: the broker verified against KAFKA_SSL_CAFILE (the system's
    CAs without one) with its host name checked, and the client certificate for mutual TLS if set."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = settings.kafka_ssl_cafile
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(f"KAFKA_SSL_CAFILE={cafile}: no CA certificate could be read ({exc})") from exc
    # create_default_context already verifies and checks host names; stated here because this is the
    # guarantee the deployment relies on, and TLS 1.0/1.1 are refused as Kafka itself does.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.kafka_ssl_certfile:
        password = settings.kafka_ssl_key_password
        try:
            # "" rather than None: with None OpenSSL would prompt on the terminal for an encrypted key.
            context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile,
                                    password=password.get_secret_value() if password else "")
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(
                f"the client certificate KAFKA_SSL_CERTFILE={settings.kafka_ssl_certfile} with KAFKA_SSL_KEYFILE="
                f"{settings.kafka_ssl_keyfile} could not be loaded: missing file, a key that does not match, or a "
                f"wrong KAFKA_SSL_KEY_PASSWORD ({type(exc).__name__})") from exc
    return context


def make_producer(settings: ServiceSettings, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer: acks=all, no duplicates on retry, lz4-compressed small batches."""
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        enable_idempotence=True,  # forces acks=all; a retried send cannot duplicate or reorder
        compression_type="lz4",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def wait_for_kafka(settings: ServiceSettings, who: str) -> None:
    """Block until the cluster answers, logging each retry; raise after kafka_connect_timeout_s."""
    deadline = time.monotonic() + settings.kafka_connect_timeout_s
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        admin = AIOKafkaAdminClient(**client_options(settings), client_id=f"{who}-probe")
        try:
            await start_admin(admin, settings)
            await admin.describe_cluster()
            if attempt > 1:
                log.info("Kafka at %s is reachable after %d attempts", settings.kafka_bootstrap_servers, attempt)
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {settings.kafka_bootstrap_servers} unreachable for "
                                   f"{settings.kafka_connect_timeout_s:.0f} s: {exc}") from exc
            log.warning("Kafka at %s is not reachable yet (%s); retrying in %.1f s",
                        settings.kafka_bootstrap_servers, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        finally:
            await admin.close()


async def start_admin(admin: AIOKafkaAdminClient, settings: ServiceSettings) -> None:
    """Start an admin client; a connection refused for security raises KafkaSecurityError with the cause."""
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        refusal = await _security_refusal(settings)
        if refusal is not None:
            raise refusal from exc
        raise


async def _security_refusal(settings: ServiceSettings) -> KafkaSecurityError | None:
    """Why the first bootstrap server refuses us, if the reason is security rather than reachability.

    aiokafka reports every failed bootstrap as "Unable to bootstrap" and only logs the cause; one
    direct connection brings back the cause so a wrong password or CA is named, not retried for minutes.
    """
    address = settings.kafka_bootstrap_servers.split(",")[0].strip()
    host, _, port = address.rpartition(":")
    options = client_options(settings)
    options.pop("bootstrap_servers")
    try:
        connection = await create_conn(host.strip("[]"), int(port), request_timeout_ms=10_000, **options)
    except ssl.SSLCertVerificationError as exc:
        return KafkaSecurityError(f"the TLS certificate of Kafka at {address} failed verification "
                                  f"({exc.verify_message}); is KAFKA_SSL_CAFILE the cluster's CA?")
    except ssl.SSLError as exc:
        return KafkaSecurityError(f"the TLS handshake with Kafka at {address} failed ({exc.reason or exc}): does its "
                                  "listener speak TLS, and does it require a client certificate?")
    except (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError,
            IllegalSaslStateError) as exc:
        return KafkaSecurityError(f"Kafka at {address} refused the authentication of user "
                                  f"{settings.kafka_sasl_username!r} with {settings.kafka_sasl_mechanism} ({exc}); "
                                  "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    except (TimeoutError, OSError, KafkaError) as exc:
        if isinstance(exc, KafkaConnectionError) and "ssl_context" in options:
            return await _client_certificate_refusal(host.strip("[]"), int(port), options["ssl_context"], address)
        return None  # not reachable (yet): the caller keeps waiting
    connection.close()
    return None


async def _client_certificate_refusal(host: str, port: int, context: ssl.SSLContext,
                                      address: str) -> KafkaSecurityError | None:
    # A broker requiring mutual TLS rejects a missing or untrusted client certificate with an alert
    # after the handshake, which aiokafka reports as a closed connection; reading once surfaces it.
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), 10)
    except (TimeoutError, OSError):
        return None
    try:
        await asyncio.wait_for(reader.read(1), 2)
    except ssl.SSLError as exc:
        return KafkaSecurityError(f"Kafka at {address} rejected this client's TLS certificate ({exc.reason or exc}): "
                                  "mutual TLS needs KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE signed by its CA")
    except (TimeoutError, OSError):
        pass  # a broker waiting for our request: the certificate was not the problem
    finally:
        writer.close()
    return None


def _topic_configs(spec: TopicLike) -> dict[str, str]:
    configs = {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(spec.retention_ms)}
    if spec.cleanup_policy == "compact":
        configs.pop("retention.ms")
    return configs


async def ensure_topics(settings: ServiceSettings, specs: Iterable[TopicLike],
                        replication_factor: int = 1) -> list[str]:
    """Create the registry's topics that are missing and grow partitions that are too few.

    Returns the names created. Existing topics keep their data; partitions never shrink (Kafka
    cannot), so a registry asking for fewer than exist is logged, not applied.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="amiflow-topics")
    try:
        await start_admin(admin, settings)
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, replication_factor, topic_configs=_topic_configs(s))
                     for s in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another process won the race; the topic is there, which is all we need
            created = [s.name for s in missing]
        await _grow_partitions(admin, [s for s in specs if s.name in existing])
        return created
    finally:
        await admin.close()


async def _grow_partitions(admin: AIOKafkaAdminClient, specs: list[TopicLike]) -> None:
    if not specs:
        return
    described = await admin.describe_topics([s.name for s in specs])
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    grow = {}
    for spec in specs:
        have = counts.get(spec.name, spec.partitions)
        if have < spec.partitions:
            grow[spec.name] = NewPartitions(spec.partitions)
        elif have > spec.partitions:
            log.warning("topic %s has %d partitions, the registry says %d; leaving it", spec.name, have,
                        spec.partitions)
    if grow:
        await admin.create_partitions(grow)
