"""OpenTelemetry tracing with the W3C trace context carried in Kafka headers.

A trace starts where a reading enters (HTTP or DTU frame) and continues through every hop: the
producer injects `traceparent` into the record's headers (and into the outbox row, so a relayed
event stays in the trace that caused it); the consumer extracts it and processes inside a child span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind

log = logging.getLogger("amiflow.telemetry")

KafkaHeaders = Sequence[tuple[str, bytes]]
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def configure_tracing(service: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider for this process; spans go to OTLP/HTTP when an endpoint is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"amiflow-{service}"}))
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer("amiflow")


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def merge_trace_headers(headers: KafkaHeaders) -> list[tuple[str, bytes]]:
    """`headers` with any stale trace headers replaced by the current context's."""
    return [(k, v) for k, v in headers if k not in _TRACE_HEADERS] + trace_headers()


@contextmanager
def consume_span(name: str, headers: KafkaHeaders | None, **attributes: str | int) -> Iterator[Span]:
    """A consumer span parented by the trace context found in the record's headers."""
    carrier = {k: v.decode(errors="replace") for k, v in (headers or ()) if k in _TRACE_HEADERS}
    parent = propagate.extract(carrier)
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(name, kind=SpanKind.CONSUMER, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)
