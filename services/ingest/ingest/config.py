"""Settings of the ingest service (env prefix INGEST_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from amiflow_runtime.config import ServiceSettings, settings_config
from pydantic import model_validator

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
    # A socket that has not logged in (TLS handshake included) within this is closed: real DTUs send
    # their registration packet at once (§1), so 30 s is generous even over a slow cellular link.
    gateway_login_timeout_s: float = 30.0
    # The DTUs' configured heartbeat bytes (hex); the default is USR's factory content "www.usr.cn" (§2),
    # the most common in the field. Empty: the DTUs send none.
    gateway_heartbeat_hex: str = "7777772e7573722e636e"
    # No bytes for this long closes a link: downlink heartbeats are forbidden (§0 rule 3), so silence is how a
    # half-open cellular link shows; 300 s covers USR's default 30 s heartbeat ten times over.
    gateway_idle_timeout_s: float = 300.0
    # Carrier NAT puts many DTUs behind one address, so the limit is generous but finite.
    gateway_max_connections_per_address: int = 200
    # Every socket this process holds; past it a new one is refused at once, before the process runs out of
    # file descriptors and fails its database and Kafka sockets too. Keep it below `ulimit -n`.
    gateway_max_connections: int = 5000
    # Sockets not yet logged in (TLS handshake included) have their own, smaller share of the total: a flood
    # of silent sockets holds at most this many, each for at most the login timeout, while the links of DTUs
    # already logged in keep theirs. Well above the logins of a whole fleet coming back after an outage.
    gateway_max_pending_logins: int = 500
    # Bytes a link may send without one valid frame among them before it is cut off. Each is reported as
    # FrameRejected; a DTU with a garbled bus sends a few hundred a poll, a flood far more.
    gateway_max_bytes_without_frame: int = 65536
    # Only registered DTUs may talk: an id the registry does not know (or a retired gateway's) is refused.
    # True is for commissioning only: unknown DTUs are then held under gateway_unassigned_tenant as
    # "unregistered-<id>", nothing they send is read, and all of it is reported as FrameRejected there.
    gateway_accept_unregistered: bool = False
    # Refusals come from outside: at most this many a minute per reason are logged and kept as FrameRejected
    # (the metric counts every one), so a flood cannot fill the disk.
    gateway_refusal_reports_per_minute: int = 30
    # TLS on the DTU port (1.2 or later) when both files are set; with a CA file, DTUs must also present a
    # client certificate it issued (mutual TLS, for DTUs that support it). Unset: plain TCP, as most DTUs speak.
    gateway_tls_certfile: Path | None = None
    gateway_tls_keyfile: Path | None = None
    gateway_tls_cafile: Path | None = None
    gateway_reply_timeout_s: float = 5.0
    gateway_retries: int = 2
    gateway_min_gap_s: float = 0.2
    # Read every meter once right after its DTU logs in (commissioning, or to fill an outage gap at once).
    # Off by default: such reads fall between the meter's schedule slots, which VEE judges by the slot.
    gateway_poll_on_login: bool = False
    # How often a held link re-reads its meters and its gateway's record: a gateway retired (or an id
    # re-registered) while connected loses its link within this.
    gateway_refresh_meters_s: float = 300.0
    # FrameRejected events from DTUs that could not say who they are go to this tenant's stream.
    gateway_unassigned_tenant: str = "platform"
    # A meter clock this far ahead of ours is wrong, not early (vee.md clock tolerance is finer).
    max_future_skew_s: int = 300

    @model_validator(mode="after")
    def _tls_files_come_together(self) -> IngestSettings:
        if (self.gateway_tls_certfile is None) != (self.gateway_tls_keyfile is None):
            raise ValueError("INGEST_GATEWAY_TLS_CERTFILE and INGEST_GATEWAY_TLS_KEYFILE go together, or neither")
        if self.gateway_tls_cafile is not None and self.gateway_tls_certfile is None:
            raise ValueError("INGEST_GATEWAY_TLS_CAFILE (client certificates) needs the gateway's own certificate "
                             "and key (INGEST_GATEWAY_TLS_CERTFILE, INGEST_GATEWAY_TLS_KEYFILE)")
        return self
