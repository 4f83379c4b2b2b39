"""Kafka clients configured from settings: idempotent producer, topics from the registry, broker wait."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

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


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


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
            await admin.start()
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
    await admin.start()
    try:
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
