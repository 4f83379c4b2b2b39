"""Downlink: commands from the commands service reach the device through the link that holds it.

Commands wait in the mailbox table until the device's DTU is online (or a sleepy meter's next
uplink). They go out one at a time on the bus, and the reply is mapped back to the command id:
CommandAcknowledged, or CommandFailed with the device's error. An acknowledgement is not success:
after a valve, relay or clock command the gateway reads the meter back at once, so its next
DeviceStatusReported shows the new state. A read-now command is itself a read. Its replies are
published as a poll's are, and the command is acknowledged after them.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
    ParameterSetting,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters import gateway_db
from ingest.adapters.gateway_db import downlink_commands
from ingest.app import stage_facts
from ingest.core.downlink import (
    Arrival,
    BusOrder,
    DownlinkKind,
    Exchange,
    MailboxCommand,
    MailboxState,
    arrival,
    bus_order,
    mailbox_command,
    resend_note,
    send_detail,
)
from ingest.core.meter_requests import is_command_reply_from
from ingest.core.protocols import DecodedFrame, MeterProfile
from ingest.core.registry import Meter
from ingest.gateway.link import DtuLink
from ingest.gateway.uplink import GatewaySink

log = logging.getLogger("ingest.gateway.downlink")

MAX_ATTEMPTS = 3  # sends without any reply before the command fails for good
# Every held link asks for its commands each second: one shared look at which meters have any keeps that to
# one query a second for the process instead of one per link (10,000 links made 10,000 queries a second).
# A new command waits at most this much longer for its link to notice it.
PENDING_SNAPSHOT_S = 0.5


async def on_command(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
    """Put a send of a command in the mailbox: a new row, or the command's row pending again."""
    command = mailbox_command(envelope.payload)
    if command is None:
        return []
    # A delivery may settle the row between our read and our write; then we decide again on its new state.
    for _ in range(3):
        entry = await gateway_db.mailbox_entry(session, command.command_id)
        if entry is None:  # Arrival.NEW: the first send of this command
            await gateway_db.add_to_mailbox(session, envelope.tenant_id, command, envelope.recorded_at)
            return []
        step = arrival(entry.state)
        if step is Arrival.STILL_PENDING:
            changes: dict[str, Any] = {"expires_at": command.expires_at, "updated_at": envelope.recorded_at}
        else:
            changes = {"state": MailboxState.PENDING.value, "attempts": 0, "expires_at": command.expires_at,
                       "not_before": command.not_before, "updated_at": envelope.recorded_at,
                       "detail": resend_note(entry.state, entry.attempts, entry.detail, command.send)}
        if await gateway_db.change_mailbox(session, command.command_id, entry.state, **changes):
            log.info("command %s for %s: %s", command.command_id, command.meter_id, step.value)
            return []
    raise RuntimeError(f"the mailbox row of command {command.command_id} kept changing under us")


class Downlink:
    """Delivers mailbox commands over one gateway's links."""

    def __init__(self, runtime: ServiceRuntime, sink: GatewaySink) -> None:
        self.runtime = runtime
        self.sink = sink  # read-now replies go where a poll's go
        self._pending: frozenset[tuple[str, str]] = frozenset()  # (tenant, meter) with a pending command
        self._pending_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    async def _meters_with_pending(self) -> frozenset[tuple[str, str]]:
        # Links never queue for the table (10,000 of them waiting on a lock cost a quarter of the process): a
        # stale snapshot starts one read for all, and until it lands they see the previous one.
        if self._reading is None and time.monotonic() - self._pending_at >= PENDING_SNAPSHOT_S:
            self._reading = asyncio.create_task(self._read_pending())
        if self._pending_at == float("-inf") and self._reading is not None:  # none yet: wait for the first
            await asyncio.shield(self._reading)
        return self._pending

    async def _read_pending(self) -> None:
        # Rows come from any instance's consumer, so the table is asked, not a signal of this process.
        try:
            async with self.runtime.sessions() as session:
                rows = await session.execute(select(downlink_commands.c.tenant_id, downlink_commands.c.meter_id)
                                             .where(downlink_commands.c.state == MailboxState.PENDING.value)
                                             .distinct())
                self._pending = frozenset((row.tenant_id, row.meter_id) for row in rows)
            self._pending_at = time.monotonic()
        except Exception as exc:  # the next check reads again; meanwhile the links see the last snapshot
            log.warning("could not read which meters have pending commands: %s", exc)
        finally:
            self._reading = None

    async def pending_for(self, tenant_id: str, meter_ids: Sequence[str]) -> list[Any]:
        """Pending commands of these meters, oldest first."""
        if not meter_ids:
            return []
        pending = await self._meters_with_pending()
        if not any((tenant_id, meter_id) in pending for meter_id in meter_ids):
            return []
        async with self.runtime.sessions() as session:
            rows = await session.execute(select(downlink_commands).where(
                downlink_commands.c.state == MailboxState.PENDING.value, downlink_commands.c.tenant_id == tenant_id,
                downlink_commands.c.meter_id.in_(list(meter_ids))).order_by(downlink_commands.c.created_at))
            return list(rows)

    async def deliver(self, link: DtuLink, meters: dict[str, Meter], profiles: dict[str, MeterProfile]) -> list[str]:
        """Send what is due to meters on this link; returns the meter ids to read back."""
        now = self.runtime.clock.now()
        read_back = []
        for row in await self.pending_for(link.tenant_id, list(meters)):
            if row.expires_at <= now:
                await self._expire(row, now)
            elif row.not_before is None or row.not_before <= now:
                meter = meters[row.meter_id]
                profile = profiles.get(meter.meter_id)
                if profile is None:
                    unusable = f"meter model profile {meter.details.profile!r} does not load; nothing can be sent"
                    await self._fail(row, FailureReason.DEVICE_REJECTED, unusable, row.attempts, None)
                elif await self._send(link, row, meter, profile) and row.kind != DownlinkKind.READ_NOW:
                    read_back.append(meter.meter_id)  # a read-now was a read already
        return read_back

    async def _send(self, link: DtuLink, row: Any, meter: Meter, profile: MeterProfile) -> bool:
        """One send of a command; False when it never went on the bus."""
        command = _command_of(row)
        zone = ZoneInfo(self.runtime.settings.zone_of(link.tenant_id))

        def order_now() -> BusOrder:
            return bus_order(command, meter.details, profile, self.runtime.clock.now(), zone)

        try:
            order = order_now()
        except ValueError as exc:  # the model cannot do it: no valve, no relay, no time sync, no such parameter
            await self._fail(row, FailureReason.DEVICE_REJECTED, str(exc), row.attempts, None)
            return False
        attempt = row.attempts + 1

        def frame_now() -> bytes:  # built as it goes out: a clock write waiting for the bus stays on time
            return order_now().requests[0]

        if order.exchange is Exchange.BROADCAST:
            if await link.send_only(frame_now):
                await self._acknowledge(row, link, None, attempt)
            else:
                await self._no_reply(row, attempt)
        elif order.exchange is Exchange.READ:
            await self._read(link, row, meter, order.requests, attempt)
        else:
            reply = await link.request(frame_now, is_command_reply_from(meter.details.bus_address))
            await self._answered(row, link, reply, attempt)
        return True

    async def _read(self, link: DtuLink, row: Any, meter: Meter, requests: Sequence[bytes], attempt: int) -> None:
        # The readings are staged in their own transactions before the acknowledgement. A crash
        # between the two leaves the command pending, so the meter is read once more. That costs
        # one extra reading, and no reading is lost.
        replies = await self.sink.read_meter(link, meter, requests)
        if replies is None:
            await self._no_reply(row, attempt)
            return
        # One normal reply means the read was done (a model may refuse a read it lists). If every reply
        # is abnormal, the meter refused the read, and the first reply's error is the reason.
        answered = [reply for reply in replies if not reply.is_error]
        await self._answered(row, link, answered[0] if answered else replies[0], attempt)

    async def _answered(self, row: Any, link: DtuLink, reply: DecodedFrame | None, attempt: int) -> None:
        if reply is None:
            await self._no_reply(row, attempt)
        elif reply.is_error:
            await self._fail(row, FailureReason.DEVICE_REJECTED, reply.error or "abnormal reply", attempt,
                             reply.error_code)
        else:
            await self._acknowledge(row, link, reply, attempt)

    async def _acknowledge(self, row: Any, link: DtuLink, reply: DecodedFrame | None, attempt: int) -> None:
        now = self.runtime.clock.now()
        # CJ/T 188 valve replies carry the valve state after the move (§1.5); for other commands that
        # state would be old news, so it is not reported.
        moved = reply.status.valve if reply is not None and reply.status is not None else None
        event = CommandAcknowledged(command_id=UUID(row.command_id), device_id=row.meter_id, acknowledged_at=now,
                                    attempt=attempt, gateway_id=link.gateway_id,
                                    reported_valve_state=moved if row.kind == DownlinkKind.VALVE else None,
                                    reply_hex=reply.raw_hex if reply is not None else None)
        await self._settle(row, MailboxState.ACKNOWLEDGED, attempt, send_detail(row.detail, None), event)

    async def _no_reply(self, row: Any, attempt: int) -> None:
        if attempt >= MAX_ATTEMPTS:
            await self._fail(row, FailureReason.NO_REPLY, f"no reply to {attempt} sends", attempt, None)
            return
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(update(downlink_commands).where(
                downlink_commands.c.command_id == row.command_id).values(
                attempts=attempt, updated_at=self.runtime.clock.now(), detail=send_detail(row.detail, "no reply yet")))

    async def _fail(self, row: Any, reason: FailureReason, detail: str, attempts: int, code: int | None) -> None:
        event = CommandFailed(command_id=UUID(row.command_id), device_id=row.meter_id,
                              failed_at=self.runtime.clock.now(), reason=reason, detail=detail[:2000],
                              attempts=attempts, device_error_code=code)
        await self._settle(row, MailboxState.FAILED, attempts, send_detail(row.detail, detail), event)

    async def _expire(self, row: Any, now: datetime) -> None:
        event = CommandExpired(command_id=UUID(row.command_id), device_id=row.meter_id, expired_at=now,
                               attempts=row.attempts)
        await self._settle(row, MailboxState.EXPIRED, row.attempts,
                           send_detail(row.detail, "expired before the device could be reached"), event)

    async def _settle(self, row: Any, state: MailboxState, attempts: int, detail: str | None, event: Any) -> None:
        # Mailbox state and the event commit together: a crash cannot acknowledge twice or never.
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(update(downlink_commands).where(
                downlink_commands.c.command_id == row.command_id).values(
                state=state.value, attempts=attempts, detail=detail, updated_at=now))
            await stage_facts(session, row.tenant_id, [event], row.meter_id, now, now)
        self.runtime.wake_relay()
        log.info("command %s for %s: %s", row.command_id, row.meter_id, state.value)


def _command_of(row: Any) -> MailboxCommand:
    parameter = (ParameterSetting(name=row.parameter_name, value=row.parameter_value)
                 if row.parameter_name is not None else None)
    return MailboxCommand(UUID(row.command_id), row.meter_id, DownlinkKind(row.kind), row.action, parameter,
                          row.not_before, row.expires_at)
