"""What to cut off when an account is depleted and what to restore when it is paid (billing.md B2-B4).

Latest intent wins: a restore cancels a cut-off that has not gone out, and a cut-off cancels a
restore that has not. A command already sent cannot be called back, so the new one is queued
after it. A device already in the wanted state gets nothing. A restore undoes only what the
balance did: a valve closed on a burst or by an operator stays closed when the money comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from amiflow_schemas.events.billing import AccountMeter, BalanceDepleted, BalanceRestored
from amiflow_schemas.events.commands import (
    CancelReason,
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    CommandRequested,
    ScheduleHold,
)
from amiflow_schemas.primitives import Utility

from commands.core.capabilities import Device, check_request, supported_kinds
from commands.core.devices import DeviceState
from commands.core.intake import Conflicts, conflicts, queued_after_in_flight
from commands.core.lifecycle import SERVICE, cancel, request
from commands.core.model import CUT_OFF_KIND, PENDING, Command, Transition, derived_command_id, in_wanted_state
from commands.core.policy import AccountExemption, CutOffPolicy, earliest_cut_off
from commands.core.supply import AccountSupply, evolve


@dataclass(frozen=True)
class DeviceContext:
    """What the service knows of one of the account's devices."""

    device: Device | None  # None: not in the registry
    state: DeviceState | None = None
    outstanding: tuple[Command, ...] = ()  # its open commands


@dataclass(frozen=True)
class SupplySituation:
    """Everything a supply decision reads besides the balance event."""

    policy: CutOffPolicy
    devices: Mapping[str, DeviceContext]  # by meter id
    zone: ZoneInfo  # the tenant's
    now: datetime
    cause_id: UUID  # the balance event's id: commands derive their ids from it
    exemption: AccountExemption | None = None


@dataclass(frozen=True)
class Cancellation:
    """A command not yet sent that a decision withdraws."""

    command: Command
    reason: CancelReason
    detail: str
    superseded_by: UUID | None = None


@dataclass(frozen=True)
class SupplyDecision:
    """The commands to request and to cancel, and why devices were left alone."""

    requests: tuple[CommandRequested, ...] = ()
    cancels: tuple[Cancellation, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (meter id, why)


def decide_on_balance(before: AccountSupply | None, event: BalanceDepleted | BalanceRestored,
                      situation: SupplySituation) -> tuple[AccountSupply, SupplyDecision]:
    """The account's supply intent after the event, and what to do; an older event than the intent does nothing."""
    after = evolve(before, event)
    if after == before:
        return after, SupplyDecision()
    if isinstance(event, BalanceDepleted):
        return after, decide_on_depleted(event, situation)
    return after, decide_on_restored(event, situation)


def decide_on_depleted(event: BalanceDepleted, situation: SupplySituation) -> SupplyDecision:
    """Cut off the services the policy cuts, on each meter that can be and is not off already."""
    parts = [_cut_off(meter, event, situation) for meter in event.meters]
    return _combined(parts)


def decide_on_restored(event: BalanceRestored, situation: SupplySituation) -> SupplyDecision:
    """Cancel held cut-offs and restore the meters the balance cut off."""
    parts = [_restore(meter, event, situation) for meter in event.meters]
    return _combined(parts)


def _cut_off(meter: AccountMeter, event: BalanceDepleted, s: SupplySituation) -> SupplyDecision:
    if meter.utility not in s.policy.cut_utilities:
        return _skip(meter, f"policy {s.policy.policy_id} does not cut {meter.utility.value}")
    kind, context = CUT_OFF_KIND[meter.utility], s.devices.get(meter.meter_id, DeviceContext(None))
    found = conflicts(kind, context.outstanding)
    if found.same_kind is not None:
        return _superseding(found, found.same_kind.command_id, meter, "a cut-off is already outstanding")
    if found.in_flight is None and _already(kind, context.state):
        return _superseding(found, None, meter, f"already {_off_word(kind)}")
    send_at, holds = earliest_cut_off(s.policy, s.now, s.zone, _exempt_until(event, s),
                                      context.state.last_cut_off_at if context.state else None)
    requested = _requested(kind, meter, CommandReason.BALANCE_DEPLETED, event.account_id, s, send_at, holds)
    return _checked(requested, found, context, meter, s)


def _restore(meter: AccountMeter, event: BalanceRestored, s: SupplySituation) -> SupplyDecision:
    context = s.devices.get(meter.meter_id, DeviceContext(None))
    cut = CUT_OFF_KIND[meter.utility]
    held = tuple(Cancellation(c, CancelReason.BALANCE_RESTORED, "the balance was restored before it was sent")
                 for c in context.outstanding if c.kind is cut and c.state in PENDING
                 and c.request.reason is CommandReason.BALANCE_DEPLETED)
    remaining = tuple(c for c in context.outstanding if all(c is not h.command for h in held))
    other_cut = next((c for c in remaining if c.kind is cut and c.is_open), None)
    if other_cut is not None and other_cut.request.reason is not CommandReason.BALANCE_DEPLETED:
        why = f"a {other_cut.request.reason.value} cut-off is outstanding; a payment does not undo it"
        return SupplyDecision(cancels=held, skipped=((meter.meter_id, why),))
    if not s.policy.restore_on_balance_restored:
        return SupplyDecision(cancels=held, skipped=((meter.meter_id, "the policy restores by hand"),))
    # A cut-off waiting to be sent again was sent before: the meter may be off after all.
    maybe_off = any(h.command.attempt > 0 for h in held) or _cut_by_balance(cut, context.state)
    if other_cut is None and not maybe_off:
        return SupplyDecision(cancels=held, skipped=((meter.meter_id, "not cut off by the balance"),))
    restored = _restore_request(meter, event, s, DeviceContext(context.device, context.state, remaining))
    return SupplyDecision(restored.requests, (*held, *restored.cancels), restored.skipped)


def _restore_request(meter: AccountMeter, event: BalanceRestored, s: SupplySituation,
                     context: DeviceContext) -> SupplyDecision:
    kind = _restore_kind(meter.utility, context.device, s.policy)
    found = conflicts(kind, context.outstanding)
    if found.same_kind is not None:
        return _superseding(found, found.same_kind.command_id, meter, "a restore is already outstanding")
    if found.in_flight is None and _already(kind, context.state):
        return _superseding(found, None, meter, "already restored")
    requested = _requested(kind, meter, CommandReason.BALANCE_RESTORED, event.account_id, s, None, ())
    return _checked(requested, found, context, meter, s)


def _cut_by_balance(cut: CommandKind, state: DeviceState | None) -> bool:
    last = state.last_switch(cut) if state is not None else None
    return last is not None and last.kind is cut and last.reason is CommandReason.BALANCE_DEPLETED


def _restore_kind(utility: Utility, device: Device | None, policy: CutOffPolicy) -> CommandKind:
    if utility is not Utility.ELECTRICITY:
        return CommandKind.VALVE_OPEN
    # A meter that cannot close directly (the 1C amendment is optional) still allows closing.
    if device is not None and policy.relay_restore not in supported_kinds(device):
        return CommandKind.RELAY_CLOSE_ALLOWED
    return policy.relay_restore


def _requested(kind: CommandKind, meter: AccountMeter, reason: CommandReason, account_id: str, s: SupplySituation,
               not_before: datetime | None, holds: tuple[ScheduleHold, ...]) -> CommandRequested:
    held = not_before is not None and not_before > s.now
    return CommandRequested(
        command_id=derived_command_id(s.cause_id, meter.meter_id, kind.value), device_id=meter.meter_id, kind=kind,
        parameter=None, reason=reason, origin=CommandOrigin.POLICY, requested_by=SERVICE, note=None,
        rule_id=s.policy.policy_id, account_id=account_id, operation_id=None, after_command_id=None, batch_id=None,
        idempotency_key=None, priority=CommandPriority.NORMAL, requested_at=s.now,
        not_before=not_before if held else None, holds=holds if held else (),
        expires_at=(not_before if held and not_before else s.now) + s.policy.command_ttl)


def _checked(requested: CommandRequested, found: Conflicts, context: DeviceContext, meter: AccountMeter,
             s: SupplySituation) -> SupplyDecision:
    refusal = check_request(requested, context.device, s.now)
    if refusal is not None:
        return _skip(meter, refusal.message)
    requested = queued_after_in_flight(requested, found)
    detail = f"superseded by {requested.kind.value} {requested.command_id}"
    cancels = tuple(Cancellation(c, CancelReason.SUPERSEDED, detail, requested.command_id) for c in found.pending)
    return SupplyDecision((requested,), cancels)


def _superseding(found: Conflicts, by: UUID | None, meter: AccountMeter, why: str) -> SupplyDecision:
    detail = f"superseded: {why}"
    cancels = tuple(Cancellation(c, CancelReason.SUPERSEDED, detail, by) for c in found.pending)
    return SupplyDecision(cancels=cancels, skipped=((meter.meter_id, why),))


def _already(kind: CommandKind, state: DeviceState | None) -> bool:
    return state is not None and in_wanted_state(kind, state.valve, state.relay) is True


def _off_word(kind: CommandKind) -> str:
    return "closed" if kind is CommandKind.VALVE_CLOSE else "disconnected"


def _exempt_until(event: BalanceDepleted, s: SupplySituation) -> datetime | None:
    own = s.exemption if s.exemption is not None and s.exemption.account_id == event.account_id else None
    ends = [e for e in (event.exempt_until, own.ends_at(s.zone) if own else None) if e is not None]
    return max(ends) if ends else None


def _skip(meter: AccountMeter, why: str) -> SupplyDecision:
    return SupplyDecision(skipped=((meter.meter_id, why),))


def _combined(parts: list[SupplyDecision]) -> SupplyDecision:
    return SupplyDecision(tuple(r for p in parts for r in p.requests), tuple(c for p in parts for c in p.cancels),
                          tuple(s for p in parts for s in p.skipped))


def carry_out(decision: SupplyDecision, tenant_id: str, now: datetime) -> tuple[Transition, ...]:
    """The transitions of a decision: its cancellations first, then its requests."""
    cancelled = (cancel(c.command, SERVICE, c.reason, c.detail, now, c.superseded_by) for c in decision.cancels)
    requested = (request(tenant_id, r, now) for r in decision.requests)
    return (*(t for t in cancelled if isinstance(t, Transition)), *requested)
