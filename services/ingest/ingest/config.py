"""Settings of the ingest service (env prefix INGEST_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config


class IngestSettings(ServiceSettings):
    """Head-end settings; platform-wide ones (Kafka, telemetry) come from ServiceSettings."""

    model_config = settings_config("INGEST_")
    service_name: ClassVar[str] = "ingest"
    default_api_port: ClassVar[int] = 8001

    gateway_port: int = 9100
    # A meter clock this far ahead of ours is wrong, not early (vee.md clock tolerance is finer).
    max_future_skew_s: int = 300
