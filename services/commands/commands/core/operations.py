"""Service operations as command sequences: opening an account, moving out, swapping a meter,
downloading parameters.

A step that must come after another names it in after_command_id; it is scheduled once that
one has ended, whatever the outcome (a failed final read still closes the valve, and raises its
own operator alarm). Steps a device cannot do are left out and reported, not refused as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from amiflow_schemas.events.commands import (
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    CommandRequested,
    ParameterSetting,
    ScheduleHold,
)

from commands.core.capabilities import Device, supported_kinds
from commands.core.model import CUT_OFF_KIND, derived_command_id


@dataclass(frozen=True)
class OperationContext:
    """Who runs an operation, when, and for which account."""

    operation_id: UUID
    requested_by: str  # the operator, or the service that started it
    note: str | None
    now: datetime
    ttl: timedelta  # how long each step stays open from its start
    account_id: str | None = None


@dataclass(frozen=True)
class OperationPlan:
    """The steps to submit in order, and the devices or steps left out with why."""

    requests: tuple[CommandRequested, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (device id, why)


def account_opened(devices: Sequence[Device], ctx: OperationContext,
                   relay_restore: CommandKind = CommandKind.RELAY_CLOSE_ALLOWED) -> OperationPlan:
    """Open each valve and allow each relay to close, so the new customer has supply."""
    steps: list[CommandRequested] = []
    skipped: list[tuple[str, str]] = []
    for device in devices:
        kinds = supported_kinds(device)
        relay = relay_restore if relay_restore in kinds else CommandKind.RELAY_CLOSE_ALLOWED
        kind = next((k for k in (CommandKind.VALVE_OPEN, relay) if k in kinds), None)
        if kind is None:
            skipped.append((device.device_id, "no valve or relay to open"))
            continue
        steps.append(_step(ctx, device, kind, CommandReason.ACCOUNT_OPENED))
    return OperationPlan(tuple(steps), tuple(skipped))


def move_out(devices: Sequence[Device], ctx: OperationContext) -> OperationPlan:
    """A final read of each meter, then its valve closed or relay tripped."""
    steps: list[CommandRequested] = []
    skipped: list[tuple[str, str]] = []
    for device in devices:
        kinds = supported_kinds(device)
        read = _step(ctx, device, CommandKind.READ_NOW, CommandReason.MOVE_OUT) \
            if CommandKind.READ_NOW in kinds else None
        cut = CUT_OFF_KIND[device.utility]
        close = _step(ctx, device, cut, CommandReason.MOVE_OUT, after=read) if cut in kinds else None
        if read is None:
            skipped.append((device.device_id, "cannot be read remotely: take the final reading on site"))
        if close is None:
            skipped.append((device.device_id, f"cannot {cut.value} remotely"))
        steps.extend(s for s in (read, close) if s is not None)
    return OperationPlan(tuple(steps), tuple(skipped))


def meter_replacement(old: Device, new: Device, ctx: OperationContext) -> OperationPlan:
    """A final read of the old meter, then a first read of the new one."""
    steps: list[CommandRequested] = []
    skipped: list[tuple[str, str]] = []
    for device in (old, new):
        if CommandKind.READ_NOW not in supported_kinds(device):
            skipped.append((device.device_id, "cannot be read remotely: read it on site"))
            continue
        steps.append(_step(ctx, device, CommandKind.READ_NOW, CommandReason.METER_REPLACEMENT,
                           after=steps[-1] if steps else None))
    return OperationPlan(tuple(steps), tuple(skipped))


def parameter_download(devices: Sequence[Device], parameter: ParameterSetting, ctx: OperationContext,
                       not_before: datetime | None) -> OperationPlan:
    """Write one parameter to many devices, at routine priority, from ``not_before`` on."""
    steps = tuple(_step(ctx, d, CommandKind.SET_PARAMETER, CommandReason.PARAMETER_DOWNLOAD, parameter=parameter,
                        priority=CommandPriority.ROUTINE, not_before=not_before)
                  for d in devices if CommandKind.SET_PARAMETER in supported_kinds(d))
    skipped = tuple((d.device_id, "its profile states no parameter writes") for d in devices
                    if CommandKind.SET_PARAMETER not in supported_kinds(d))
    return OperationPlan(steps, skipped)


def _step(ctx: OperationContext, device: Device, kind: CommandKind, reason: CommandReason, *,
          after: CommandRequested | None = None, parameter: ParameterSetting | None = None,
          priority: CommandPriority = CommandPriority.NORMAL, not_before: datetime | None = None) -> CommandRequested:
    held = not_before is not None and not_before > ctx.now
    start = not_before if held and not_before is not None else ctx.now
    return CommandRequested(
        command_id=derived_command_id(ctx.operation_id, device.device_id, kind.value), device_id=device.device_id,
        kind=kind, parameter=parameter, reason=reason, origin=CommandOrigin.SERVICE_OPERATION,
        requested_by=ctx.requested_by, note=ctx.note, rule_id=None, account_id=ctx.account_id,
        operation_id=ctx.operation_id, after_command_id=after.command_id if after else None, batch_id=None,
        idempotency_key=None, priority=priority, requested_at=ctx.now, not_before=start if held else None,
        holds=(ScheduleHold.NOT_BEFORE,) if held else (), expires_at=start + ctx.ttl)
