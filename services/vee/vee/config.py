"""Settings of the VEE service (env prefix VEE_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config


class VeeSettings(ServiceSettings):
    """Validation, estimation and editing; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("VEE_")
    service_name: ClassVar[str] = "vee"
    default_api_port: ClassVar[int] = 8002

    # Faust table state: "memory://" or "rocksdb://" (backed by changelog topics either way).
    faust_store: str = "memory://"
    # The Faust app id, which is also its Kafka consumer group.
    faust_app_id: str = "amiflow-vee"
    # How often the timer looks for meters silent past their estimation wait (and lost communication).
    estimation_interval_s: float = 300.0
    # How often the district job evaluates water balances and night flow, and how long after a local
    # day ends it waits for that day's last readings before the day's alarms are looked at.
    district_interval_s: float = 600.0
    district_close_delay_s: float = 7200.0
