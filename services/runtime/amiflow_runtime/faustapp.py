"""Faust stream processors on the runtime: inbox-backed agents, ops pages, clean worker start.

Faust agents here apply records through the same EventPipeline as plain consumers (inbox, outbox,
dead letters); Faust acks a record when the agent moves past it, so its periodic offset commit
always follows the database transaction. Faust's exactly-once mode is deliberately not used
(see ../shared/specs/stack-notes.md): idempotence on the event id does the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from faust.types.auth import CredentialsT
from prometheus_client import generate_latest

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.deadletter import ConsumedRecord
from amiflow_runtime.kafka import client_options, wait_for_kafka
from amiflow_runtime.logs import logging_dict_config
from amiflow_runtime.metrics import forget_lag, note_lag
from amiflow_runtime.pipeline import BatchHandler, Handler
from amiflow_runtime.service import ServiceRuntime


def faust_app(runtime: ServiceRuntime, store: str = "memory://", app_id: str | None = None) -> faust.App:
    """A Faust app for one service: our topics are never declared by Faust, only used. The app id is
    the consumer group: two deployments on one cluster need two ids."""
    settings = runtime.settings
    datadir = settings.resolved_data_dir / "faust" / settings.service_name
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        app_id or f"amiflow-{settings.service_name}",
        **faust_kafka_options(settings),
        store=store,
        datadir=str(datadir),
        web_enabled=True, web_bind=settings.api_host, web_port=settings.resolved_ops_port,
        web_host=settings.api_host,
    )
    _ops_pages(app, runtime)

    @app.task  # type: ignore[untyped-decorator]
    async def start_runtime() -> None:
        await runtime.start()

    app.on_before_shutdown.connect(lambda *_a, **_kw: runtime.stop())

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(_app: Any, revoked: Any, **_kw: Any) -> None:
        # Another worker owns them now: its lag is the one to see, not the last value measured here.
        forget_lag(runtime.agents_ready, [(tp.topic, tp.partition) for tp in revoked])

    return app


def faust_kafka_options(settings: ServiceSettings) -> dict[str, Any]:
    """How every amiflow Faust app uses Kafka: the broker, its security, and topics used but never declared."""
    servers = ";".join(settings.kafka_bootstrap_servers.split(","))
    return {
        "broker": f"kafka://{servers}",
        "broker_credentials": broker_credentials(settings),
        "value_serializer": "raw", "key_serializer": "raw",
        "topic_allow_declare": False,  # topics come from the registry in schemas/
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
    }


def broker_credentials(settings: ServiceSettings) -> CredentialsT | None:
    """The runtime's Kafka security (`client_options`) in Faust's terms, so agents connect as every other
    client does. Faust picks SASL_SSL over SASL_PLAINTEXT by the presence of the TLS context."""
    options = client_options(settings)
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                                     ssl_context=options.get("ssl_context"), mechanism=options["sasl_mechanism"])
    if "ssl_context" in options:
        return faust.SSLCredentials(options["ssl_context"])
    return None


def _ops_pages(app: faust.App, runtime: ServiceRuntime) -> None:
    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        problem = runtime.startup_error
        return web.json({"status": "failing", "reason": problem} if problem else {"status": "ok"},
                        status=503 if problem else 200)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await runtime.readiness()
        ready = all(checks.values())
        return web.json({"status": "ready" if ready else "not ready", "checks": checks},
                        status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus reads plain text as format 0.0.4.
        return web.bytes(generate_latest(), content_type="text/plain")


def inbox_agent(app: faust.App, runtime: ServiceRuntime, topic: str, consumer: str,
                handler: Handler | BatchHandler) -> None:
    """An agent on `topic` applying each record exactly once through the runtime's pipeline.

    Records are taken in batches (up to consumer_batch_size, or what arrived within
    consumer_batch_wait_s) and applied in one transaction each; `take_events` acks a batch only after
    the agent's body returned for it, so offsets still follow the database commit.
    """
    source = app.topic(topic, value_serializer="raw", key_serializer="raw", allow_empty=True)
    runtime.agents_ready[consumer] = False
    settings = runtime.settings

    async def apply_records(stream: faust.StreamT[Any]) -> None:
        await runtime.started_event.wait()  # the producer for outbox and dead letters must be up
        pipeline = runtime.pipeline(consumer, handler)
        runtime.agents_ready[consumer] = True
        batches = stream.take_events(settings.consumer_batch_size, within=settings.consumer_batch_wait_s)  # type: ignore[attr-defined]
        async for events in batches:
            await pipeline.apply_batch([ConsumedRecord(
                topic=e.message.topic, partition=e.message.partition, offset=e.message.offset,
                key=e.message.key, value=e.message.value, headers=list(e.message.headers or ()),
            ) for e in events])
            for tp, offset in {e.message.tp: e.message.offset for e in events}.items():  # the last of each
                note_lag(consumer, tp.topic, tp.partition, offset + 1, _highwater(app, tp))

    app.agent(source, name=consumer)(apply_records)


def _highwater(app: faust.App, tp: Any) -> int | None:
    try:
        return int(app.consumer.highwater(tp))
    except Exception:  # a metric must never stop consumption (e.g. the partition was just revoked)
        return None


def run_worker(app: faust.App, settings: ServiceSettings) -> Callable[[], None]:
    """Wait for the broker with clear log lines, then run the Faust worker until SIGTERM."""

    def run() -> None:
        asyncio.run(wait_for_kafka(settings, f"{settings.service_name}-worker"))
        worker = faust.Worker(
            app, loglevel=settings.log_level.lower(), redirect_stdouts=False,
            logging_config=logging_dict_config(settings.service_name, "worker", settings.log_level,
                                               settings.log_format),
        )
        worker.execute_from_commandline()

    return run
