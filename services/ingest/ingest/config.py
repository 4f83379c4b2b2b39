"""Settings of the ingest service (env prefix INGEST_)."""

from __future__ import annotations

from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config

from ingest.core.dtu_login import LoginFormat


class IngestSettings(ServiceSettings):
    """Head-end settings; platform-wide ones (Kafka, telemetry) come from ServiceSettings."""

    model_config = settings_config("INGEST_")
    service_name: ClassVar[str] = "ingest"
    default_api_port: ClassVar[int] = 8001

    gateway_enabled: bool = True
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 9100
    # How DTUs on this port say who they are (dtu-connections.md §1): ascii-id | ddp | inhand | mac;
    # ascii-id with a length reads a bare IMEI (15) or ICCID (20) by length instead of up to a line end.
    gateway_login_format: LoginFormat = LoginFormat.ASCII_ID
    gateway_login_length: int | None = None
    gateway_login_timeout_s: float = 30.0
    # The DTUs' configured heartbeat bytes (hex); the default is USR's factory content "www.usr.cn" (§2),
    # the most common in the field. Empty: the DTUs send none.
    gateway_heartbeat_hex: str = "7777772e7573722e636e"
    gateway_idle_timeout_s: float = 300.0
    # Carrier NAT puts many DTUs behind one address, so the limit is generous but finite.
    gateway_max_connections_per_address: int = 200
    gateway_reply_timeout_s: float = 5.0
    gateway_retries: int = 2
    gateway_min_gap_s: float = 0.2
    # Read every meter once right after its DTU logs in (commissioning, or to fill an outage gap at once).
    # Off by default: such reads fall between the meter's schedule slots, which VEE judges by the slot.
    gateway_poll_on_login: bool = False
    gateway_refresh_meters_s: float = 300.0
    # FrameRejected events from DTUs that could not say who they are go to this tenant's stream.
    gateway_unassigned_tenant: str = "platform"
    # A meter clock this far ahead of ours is wrong, not early (vee.md clock tolerance is finer).
    max_future_skew_s: int = 300
