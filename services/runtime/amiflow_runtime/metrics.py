"""Prometheus metrics the runtime keeps for every service (served on /metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter(
    "amiflow_events_handled_total", "Events applied by a consumer (duplicates excluded)",
    ["consumer", "event_type"],
)
EVENTS_DUPLICATE = Counter(
    "amiflow_events_duplicate_total", "Redelivered events the inbox recognised and skipped",
    ["consumer", "event_type"],
)
EVENTS_PASSED_OVER = Counter(
    "amiflow_events_passed_over_total", "Records of event types the consumer does not act on, passed over unread",
    ["consumer", "event_type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "amiflow_events_dead_lettered_total", "Records sent to a dead-letter topic", ["consumer", "reason"],
)
HANDLER_SECONDS = Histogram(
    "amiflow_handler_seconds", "Time to apply one batch of events (often one) including its database transaction",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HANDLER_RETRIES = Counter(
    "amiflow_handler_retries_total", "Handler attempts that failed and were retried", ["consumer", "kind"],
)
OUTBOX_PUBLISHED = Counter("amiflow_outbox_published_total", "Outbox rows published to Kafka", ["topic"])
OUTBOX_PENDING = Gauge("amiflow_outbox_pending", "Outbox rows in the last batch the relay read")
AUTH_REFUSED = Counter(
    "amiflow_auth_refused_total", "API calls refused: no or bad token (401), not allowed (403/404)",
    ["route", "status"],
)
HTTP_REJECTED = Counter(
    "amiflow_http_rejected_total", "HTTP requests answered 4xx because the input was bad", ["route", "status"],
)
CONSUMER_LAG = Gauge(
    "amiflow_consumer_lag", "Records between a consumer's last applied batch and the end of the partition",
    ["consumer", "topic", "partition"],
)


def note_lag(consumer: str, topic: str, partition: int, next_offset: int, highwater: int | None) -> None:
    """Record how far behind the partition's end a consumer is after applying up to ``next_offset``.

    The highwater comes from the last fetch, so a consumer that stopped fetching keeps its last value:
    the broker-side group lag (Strimzi's Kafka Exporter) is the authority for a stuck consumer.
    """
    if highwater is not None and highwater >= 0:
        CONSUMER_LAG.labels(consumer, topic, str(partition)).set(max(0, highwater - next_offset))


def forget_lag(consumers: Iterable[str], partitions: Iterable[tuple[str, int]]) -> None:
    """Drop the lag of partitions this process no longer owns (a rebalance moved them to another)."""
    for consumer in consumers:
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):  # never measured here
                CONSUMER_LAG.remove(consumer, topic, str(partition))
