"""Downlink: commands from the commands service reach the device through the link that holds it.

Commands wait in the mailbox table until the device's DTU is online (or a sleepy meter's next
uplink), go out one at a time on the bus, and their reply is mapped back to the command id:
CommandAcknowledged, or CommandFailed with the device's error. An acknowledgement is not success;
the gateway reads the meter back at once so its next DeviceStatusReported shows the new state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas import Envelope
from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandExpired,
    CommandFailed,
    FailureReason,
    RelayAction,
    RelayCommandIssued,
    ValveAction,
    ValveCommandIssued,
)
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters.gateway_db import downlink_commands
from ingest.app import stage_facts
from ingest.core.meter_requests import is_reply_from, relay_command, valve_command
from ingest.core.protocols import DecodedFrame, MeterProfile
from ingest.core.registry import Meter
from ingest.gateway.link import DtuLink

log = logging.getLogger("ingest.gateway.downlink")

MAX_ATTEMPTS = 3  # sends without any reply before the command fails for good


async def on_command_issued(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """Put an issued valve or relay command in the mailbox (the inbox makes redelivery a no-op)."""
    command = envelope.payload
    if not isinstance(command, ValveCommandIssued | RelayCommandIssued):
        return []
    kind = "valve" if isinstance(command, ValveCommandIssued) else "relay"
    await session.execute(insert(downlink_commands).values(
        command_id=str(command.command_id), tenant_id=envelope.tenant_id, meter_id=command.device_id, kind=kind,
        action=command.action.value, not_before=command.not_before, expires_at=command.expires_at,
        state="pending", attempts=0, detail=None, created_at=envelope.recorded_at, updated_at=envelope.recorded_at,
    ))
    return []


class Downlink:
    """Delivers mailbox commands over one gateway's links."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def pending_for(self, tenant_id: str, meter_ids: Sequence[str]) -> list[Any]:
        """Pending commands of these meters, oldest first."""
        if not meter_ids:
            return []
        async with self.runtime.sessions() as session:
            rows = await session.execute(select(downlink_commands).where(
                downlink_commands.c.state == "pending", downlink_commands.c.tenant_id == tenant_id,
                downlink_commands.c.meter_id.in_(list(meter_ids))).order_by(downlink_commands.c.created_at))
            return list(rows)

    async def deliver(self, link: DtuLink, meters: dict[str, Meter], profiles: dict[str, MeterProfile]) -> list[str]:
        """Send what is due to meters on this link; returns the meter ids that got a command."""
        now = self.runtime.clock.now()
        touched = []
        for row in await self.pending_for(link.tenant_id, list(meters)):
            if row.expires_at <= now:
                await self._expire(row, now)
            elif row.not_before is None or row.not_before <= now:
                meter = meters[row.meter_id]
                await self._send(link, row, meter, profiles[meter.meter_id], now)
                touched.append(meter.meter_id)
        return touched

    async def _send(self, link: DtuLink, row: Any, meter: Meter, profile: MeterProfile, now: datetime) -> None:
        try:
            frame = (valve_command(meter.details, profile, ValveAction(row.action)) if row.kind == "valve"
                     else relay_command(meter.details, profile, RelayAction(row.action), now,
                                                ZoneInfo(self.runtime.settings.zone_of(link.tenant_id))))
        except ValueError as exc:  # the model cannot do it: no valve, no relay, no such code
            await self._fail(row, FailureReason.DEVICE_REJECTED, str(exc), row.attempts, None)
            return
        attempt = row.attempts + 1
        reply = await link.request(frame, is_reply_from(meter.details.bus_address))
        if reply is None:
            await self._no_reply(row, attempt)
        elif reply.is_error:
            await self._fail(row, FailureReason.DEVICE_REJECTED, reply.error or "abnormal reply", attempt,
                             reply.error_code)
        else:
            await self._acknowledge(row, link, reply, attempt)

    async def _acknowledge(self, row: Any, link: DtuLink, reply: DecodedFrame, attempt: int) -> None:
        now = self.runtime.clock.now()
        state = reply.status.valve if reply.status is not None else None
        event = CommandAcknowledged(command_id=UUID(row.command_id), device_id=row.meter_id, acknowledged_at=now,
                                    attempt=attempt, gateway_id=link.gateway_id, reported_valve_state=state,
                                    reply_hex=reply.raw_hex)
        await self._settle(row, "acknowledged", attempt, None, event)

    async def _no_reply(self, row: Any, attempt: int) -> None:
        if attempt >= MAX_ATTEMPTS:
            await self._fail(row, FailureReason.NO_REPLY, f"no reply to {attempt} sends", attempt, None)
            return
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(update(downlink_commands).where(
                downlink_commands.c.command_id == row.command_id).values(
                attempts=attempt, updated_at=self.runtime.clock.now(), detail="no reply yet"))

    async def _fail(self, row: Any, reason: FailureReason, detail: str, attempts: int, code: int | None) -> None:
        event = CommandFailed(command_id=UUID(row.command_id), device_id=row.meter_id,
                              failed_at=self.runtime.clock.now(), reason=reason, detail=detail[:2000],
                              attempts=attempts, device_error_code=code)
        await self._settle(row, "failed", attempts, detail, event)

    async def _expire(self, row: Any, now: datetime) -> None:
        event = CommandExpired(command_id=UUID(row.command_id), device_id=row.meter_id, expired_at=now,
                               attempts=row.attempts)
        await self._settle(row, "expired", row.attempts, "expired before the device could be reached", event)

    async def _settle(self, row: Any, state: str, attempts: int, detail: str | None, event: Any) -> None:
        # Mailbox state and the event commit together: a crash cannot acknowledge twice or never.
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(update(downlink_commands).where(
                downlink_commands.c.command_id == row.command_id).values(
                state=state, attempts=attempts, detail=detail, updated_at=now))
            await stage_facts(session, row.tenant_id, [event], row.meter_id, now, now)
        self.runtime.wake_relay()
        log.info("command %s for %s: %s", row.command_id, row.meter_id, state)
