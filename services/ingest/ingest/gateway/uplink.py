"""From decoded frames to events: readings, device status and rejections, per DTU link."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from amiflow_runtime.pipeline import is_transient
from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.devices import DeviceStatusReported, FrameRejected, RejectionReason
from amiflow_schemas.events.readings import ReadingReceived, RegisterValue
from amiflow_schemas.primitives import ReadingSource
from prometheus_client import Counter

from ingest.app import Submission, record_events, submit_batch
from ingest.core.meter_requests import comparable_address, is_reply_from
from ingest.core.protocols import DecodedFrame, FrameError, device_status, meter_time, register_values
from ingest.core.registry import Meter
from ingest.gateway.link import DtuLink, LinkSink, Rejection

log = logging.getLogger("ingest.gateway.uplink")

FRAMES = Counter("amiflow_gateway_frames_total", "Frames decoded from DTU links", ["gateway", "protocol"])
POLLS = Counter("amiflow_gateway_polls_total", "Meter reads sent by the gateway", ["gateway", "outcome"])
REJECTED = Counter("amiflow_gateway_rejected_total", "Bytes from DTU links that were no usable frame",
                   ["gateway", "protocol", "reason"])
MAX_RAW_HEX_BYTES = 256 * 1024  # FrameRejected keeps at most this much of an oversized input
MAX_OUTAGE_BACKOFF_S = 5.0
T = TypeVar("T")


class GatewaySink(LinkSink):
    """Publishes what DTU links receive; meters are resolved by bus address behind their DTU."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.meters: dict[str, dict[str, Meter]] = {}  # gateway id → bus address → meter

    def know_meters(self, gateway_id: str, meters: list[Meter]) -> None:
        """The meters behind a DTU, refreshed at login and by the poller."""
        self.meters[gateway_id] = {comparable_address(m.details.bus_address): m for m in meters}

    async def uplink(self, link: DtuLink, frame: DecodedFrame) -> None:
        meter = self.meters.get(link.gateway_id, {}).get(comparable_address(frame.address))
        if meter is None:
            await self.rejected(link, Rejection(bytes.fromhex(frame.raw_hex), RejectionReason.UNKNOWN_DEVICE,
                                                f"no meter with bus address {frame.address} behind DTU "
                                                f"{link.gateway_id}", frame.protocol, frame.address))
            return
        await self.publish(link, meter, frame)

    async def read_meter(self, link: DtuLink, meter: Meter, requests: Sequence[bytes]) -> list[DecodedFrame] | None:
        """Send a meter's reads and publish its replies; None when it stays silent (the rest is not sent)."""
        replies = []
        for request in requests:
            reply = await link.request(request, is_reply_from(meter.details.bus_address))
            if reply is None:
                POLLS.labels(link.gateway_id, "no_reply").inc()
                return None
            POLLS.labels(link.gateway_id, "error" if reply.is_error else "ok").inc()
            replies.append(reply)
            if reply.is_error:
                await self.rejected(link, Rejection(bytes.fromhex(reply.raw_hex), RejectionReason.ABNORMAL_REPLY,
                                                    reply.error or "abnormal reply", reply.protocol, reply.address))
            else:
                await self.publish(link, meter, reply)
        return replies

    async def publish(self, link: DtuLink, meter: Meter, frame: DecodedFrame) -> None:
        """Readings and status of one meter's frame, as ReadingReceived / DeviceStatusReported."""
        FRAMES.labels(link.gateway_id, frame.protocol.value).inc()
        received_at = self.runtime.clock.now()
        try:
            registers = register_values(frame, meter.details.multiplier)
            zone = ZoneInfo(self.runtime.settings.zone_of(link.tenant_id))  # meter clocks show local time
            fields = device_status(frame, zone, link.profiles.get(comparable_address(frame.address)))
        except FrameError as exc:
            await self.rejected(link, Rejection(bytes.fromhex(frame.raw_hex), exc.reason, str(exc),
                                                frame.protocol, frame.address))
            return
        clock = meter_time(frame, zone)
        measured_at = clock or received_at
        status = _status(meter, link.gateway_id, fields, received_at) if fields else None
        if status is not None and clock is not None:
            drift = round((clock - received_at).total_seconds())
            status = status.model_copy(update={"clock_drift_s": drift})
        if registers:
            reading = ReadingReceived(
                meter_id=meter.meter_id, utility=meter.details.utility, measured_at=measured_at,
                registers=tuple(RegisterValue(register=r.register, value=r.value, unit=r.unit) for r in registers),
                source=ReadingSource.DTU, gateway_id=link.gateway_id, frame_hex=frame.raw_hex,
                received_at=received_at,
            )
            await through_outages(lambda: submit_batch(self.runtime, link.tenant_id, [Submission(0, reading, status)]))
        elif status is not None:
            await through_outages(lambda: record_events(self.runtime, link.tenant_id, [status], meter.meter_id,
                                                        status.reported_at))

    async def rejected(self, link: DtuLink, rejection: Rejection) -> None:
        REJECTED.labels(link.gateway_id, rejection.protocol.value, rejection.reason.value).inc()
        await reject(self.runtime, link.tenant_id, link.gateway_id, rejection, self.meter_id_of(link, rejection))

    def meter_id_of(self, link: DtuLink, rejection: Rejection) -> str | None:
        meter = self.meters.get(link.gateway_id, {}).get(comparable_address(rejection.address or ""))
        return meter.meter_id if meter else None


async def reject(runtime: ServiceRuntime, tenant_id: str, source_id: str, rejection: Rejection,
                 meter_id: str | None = None) -> None:
    """Publish a FrameRejected with the raw bytes (truncated past 256 KiB) and the reason."""
    now = runtime.clock.now()
    raw = rejection.raw[:MAX_RAW_HEX_BYTES]
    event = FrameRejected(
        source=ReadingSource.DTU, source_id=source_id, meter_id=meter_id, protocol=rejection.protocol,
        reason=rejection.reason, detail=rejection.detail[:2000], received_at=now, raw_hex=raw.hex() or "00",
        raw_truncated=len(rejection.raw) > MAX_RAW_HEX_BYTES,
    )
    log.info("rejected %d bytes from %s: %s", len(rejection.raw), source_id, rejection.detail)
    await through_outages(lambda: record_events(runtime, tenant_id, [event], source_id, now))


async def through_outages(write: Callable[[], Awaitable[T]]) -> T:
    """Run a database write until it succeeds, waiting out a database outage.

    A DTU does not send a reply or a push again (the protocols have no acknowledgement), so a frame the
    gateway has read lives only here until it is stored: dropping it on a failed write loses the reading.
    While we wait the link is not read, and TCP holds the DTU back.
    """
    backoff = 0.2
    while True:
        try:
            return await write()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("database unavailable, holding a frame (retrying in %.1f s): %s", backoff, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_OUTAGE_BACKOFF_S)


def _status(meter: Meter, gateway_id: str, fields: dict[str, object], received_at: datetime) -> DeviceStatusReported:
    values = {**fields, "meter_id": meter.meter_id, "utility": meter.details.utility, "gateway_id": gateway_id}
    values["reported_at"] = values.get("reported_at") or received_at
    return DeviceStatusReported.model_validate(values)

