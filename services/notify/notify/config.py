"""Settings of the notify service (env prefix NOTIFY_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config


class NotifySettings(ServiceSettings):
    """Notifications; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("NOTIFY_")
    service_name: ClassVar[str] = "notify"
    default_api_port: ClassVar[int] = 8005
