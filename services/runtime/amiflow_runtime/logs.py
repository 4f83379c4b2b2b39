"""Structured logs: one JSON object per line carrying service, tenant, event and meter ids."""

from __future__ import annotations

import contextvars
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

# The default is never mutated: log_context sets a new dict each time.
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "amiflow_log_context", default={}  # noqa: B039
)

CONTEXT_KEYS = ("tenant_id", "event_id", "event_type", "meter_id", "account_id", "device_id")


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Attach ids (tenant_id, event_id, meter_id, ...) to every log line written inside the block."""
    merged = {**_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str, process: str) -> None:
        super().__init__()
        self.service = service
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.process_role = self.process
        for key, value in _context.get().items():
            setattr(record, key, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if hasattr(record, k))
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{base} [{ids}]" if ids else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _formatter(fmt: str = "json") -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601 in UTC
        )
    return _TextFormatter()


# Library chatter that drowns the services' own lines at INFO.
_NOISY = ("aiokafka", "kafka", "faust", "mode", "uvicorn.access", "alembic", "aiohttp.access")


def logging_dict_config(service: str, process: str, level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """A dictConfig for stdout with context ids; Faust's worker takes it as `logging_config`."""
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": _ContextFilter, "service": service, "process": process}},
        "formatters": {"main": {"()": _formatter, "fmt": fmt}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                "filters": ["context"], "formatter": "main"}},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        "loggers": {name: {"level": logging.getLevelName(quiet)} for name in _NOISY},
    }


def configure_logging(service: str, process: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route all logging to stdout as JSON (or text for humans) with the context ids attached."""
    logging.config.dictConfig(logging_dict_config(service, process, level, fmt))
