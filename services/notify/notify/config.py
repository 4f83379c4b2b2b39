"""Settings of the notify service (env prefix NOTIFY_)."""

from __future__ import annotations

from datetime import time
from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config
from pydantic import Field

from notify.adapters.channels import TenantChannels


class NotifySettings(ServiceSettings):
    """Notifications; platform-wide settings come from ServiceSettings."""

    model_config = settings_config("NOTIFY_")
    service_name: ClassVar[str] = "notify"
    default_api_port: ClassVar[int] = 8005

    # The Kafka consumer group (and inbox name) of the trigger consumer. Workers of one deployment share it;
    # a worker with a database of its own on the same broker (a test, a rehearsal) needs its own, or the
    # two split the partitions and each misses the other's events. Changing it re-reads the topics.
    consumer_group: str = Field("notify.triggers", min_length=1, max_length=128)
    # Each tenant's e-mail (SMTP), SMS and WeChat providers as JSON (see README); webhooks need none.
    tenant_channels: dict[str, TenantChannels] = {}
    # The SMS and WeChat providers' template ids per tenant, channel and topic:
    # {"riverside": {"sms": {"balance_low": "SMS_1234"}, "wechat": {"balance_low": "tmpl-…"}}}
    provider_templates: dict[str, dict[str, dict[str, str]]] = {}
    # Sends of one notification before it is dead-lettered, and the wait before the second one
    # (doubling each time, at most retry_backoff_max_s).
    max_attempts: int = Field(6, ge=1, le=50)
    retry_backoff_s: float = Field(30.0, gt=0)
    retry_backoff_max_s: float = Field(3600.0, gt=0)
    # How often the delivery loop looks for due notifications, and how many it takes at once.
    delivery_interval_s: float = Field(1.0, gt=0)
    delivery_batch: int = Field(100, ge=1)
    # A worker holds a notification this long while sending; a crash releases it after that.
    lease_s: float = Field(120.0, gt=0)
    # The daily low-balance reminder goes out from this local time while an account stays low.
    reminder_at: time = time(9, 0)
    # Operator alarms wait this long so that a burst of them becomes one digest, above this many.
    alarm_digest_window_s: float = Field(60.0, ge=0)
    alarm_digest_threshold: int = Field(5, ge=2)

    def channels_of(self, tenant_id: str) -> TenantChannels:
        return self.tenant_channels.get(tenant_id, TenantChannels())

    def _secrets(self) -> dict[str, str]:
        found = super()._secrets()
        for tenant, channels in self.tenant_channels.items():
            found.update({f"tenant_channels.{tenant}.{name}": value for name, value in channels.secrets().items()})
        return found
