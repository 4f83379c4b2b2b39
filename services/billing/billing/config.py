"""Settings of the billing service (env prefix BILLING_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config


class BillingSettings(ServiceSettings):
    """Prepaid billing; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("BILLING_")
    service_name: ClassVar[str] = "billing"
    default_api_port: ClassVar[int] = 8003
