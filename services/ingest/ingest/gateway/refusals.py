"""Refused connections and logins: always counted, logged and kept as FrameRejected within a budget.

A refused login is kept like any bytes the head-end could not use (a FrameRejected with the raw login
bytes on amiflow.ingest.rejected-frames, under the unassigned tenant), so an operator sees which id
tried to talk and from where. Refusals are made by strangers: past the budget only the metric moves.
"""

from __future__ import annotations

import logging
import time

from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.devices import RejectionReason
from prometheus_client import Counter

from ingest.config import IngestSettings
from ingest.core.admission import Refusal, ReportBudget
from ingest.gateway.link import Rejection
from ingest.gateway.uplink import reject

log = logging.getLogger("ingest.gateway")

REFUSED = Counter("amiflow_gateway_refused_total", "Connections refused before their DTU could talk", ["reason"])
# Connection-level refusals happen before a byte is read: there is nothing to keep but the count and a line.
_NOTHING_READ = {Refusal.TOO_MANY_FROM_ADDRESS, Refusal.GATEWAY_FULL, Refusal.TOO_MANY_PENDING, Refusal.TLS_HANDSHAKE}


class Refusals:
    """Counts every refusal; logs it and keeps it as FrameRejected while the per-minute budget lasts."""

    def __init__(self, runtime: ServiceRuntime, settings: IngestSettings) -> None:
        self.runtime = runtime
        self.tenant_id = settings.gateway_unassigned_tenant
        self.budget = ReportBudget(settings.gateway_refusal_reports_per_minute)

    def note(self, reason: Refusal, remote: str, detail: str, registration_id: str | None = None) -> bool:
        """Count and (within budget) log a refusal; True when it is worth a FrameRejected as well."""
        REFUSED.labels(reason.value).inc()
        held_back = self.budget.admit(reason.value, time.monotonic())
        if held_back is None:
            return False
        more = f" ({held_back} more refused for {reason.value} since the last report)" if held_back else ""
        log.warning("GatewayLoginRefused reason=%s registration_id=%s remote=%s: %s%s", reason.value,
                    registration_id or "-", remote, detail, more,
                    extra={"gateway_event": "GatewayLoginRefused", "refusal": reason.value,
                           "registration_id": registration_id, "remote_address": remote})
        return reason not in _NOTHING_READ

    async def refuse(self, reason: Refusal, remote: str, detail: str, raw: bytes,
                     registration_id: str | None = None) -> None:
        """Count, log and keep a refused login with the bytes it sent (nothing of it is decoded)."""
        if not self.note(reason, remote, detail, registration_id):
            return
        detail = f"login refused ({reason.value}): {detail}"
        await reject(self.runtime, self.tenant_id, remote.replace(":", "-"),
                     Rejection(raw or b"\x00", RejectionReason.UNKNOWN_DEVICE, detail))
