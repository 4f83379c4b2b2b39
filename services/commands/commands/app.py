"""Commands' handlers: balance states cut off and restore supply, the registry names devices, ingest's
acknowledgements, failures and read-backs move commands on, alarms fire automation rules; and the
timer that sends, re-sends, fails and expires what is due.

Each handler runs in the pipeline's transaction (inbox, then outbox), holding the locks of the
devices it decides about.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_runtime.clock import Clock
from amiflow_runtime.db import lock_for_transaction
from amiflow_runtime.outbox import stage
from amiflow_runtime.pipeline import Handler
from amiflow_schemas import Envelope
from amiflow_schemas.events.accounts import LinkReason, MeterLinkedToAccount, MeterUnlinkedFromAccount
from amiflow_schemas.events.alarms import AlarmRaised
from amiflow_schemas.events.billing import BalanceDepleted, BalanceRestored
from amiflow_schemas.events.commands import CommandAcknowledged, CommandExpired, CommandFailed
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.events.registry import MeterDefined, MeterReplaced, MeterStatus
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from commands.adapters import db, store
from commands.config import CommandsSettings
from commands.core.automation import decide_on_alarm
from commands.core.capabilities import Device
from commands.core.confirmation import acknowledge, confirm_from_status, record_delivery_outcome
from commands.core.cutoff import DeviceContext, SupplySituation, carry_out, decide_on_balance
from commands.core.devices import observe_status
from commands.core.intake import Accepted
from commands.core.model import derived_command_id
from commands.core.operations import OperationContext, OperationPlan, account_opened, move_out
from commands.core.timers import on_timer
from commands.desk import PRODUCER, Desk, lock_devices

log = logging.getLogger("commands")
SKIPPED = Counter("amiflow_commands_supply_skipped_total", "Meters a balance decision left alone", ["tenant"])


# What the two billing subscriptions act on: the ledger carries every charge, which the worker need not read.
BALANCE_EVENTS = frozenset({BalanceDepleted.EVENT_TYPE, BalanceRestored.EVENT_TYPE})
ACCOUNT_EVENTS = frozenset({MeterLinkedToAccount.EVENT_TYPE, MeterUnlinkedFromAccount.EVENT_TYPE})


def balance_handler(clock: Clock, settings: CommandsSettings) -> Handler:
    """BalanceDepleted / BalanceRestored → cut-off or restore commands per the tenant's policy (B2-B4)."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, BalanceDepleted | BalanceRestored):
            return []  # BalanceLow is for notify
        tenant, now = envelope.tenant_id, clock.now()
        await lock_for_transaction(session, tenant, "account", payload.account_id)
        meters = [m.meter_id for m in payload.meters]
        await lock_devices(session, tenant, meters)
        before = await db.load(session, tenant, payload.account_id)
        found = await store.policy(session, tenant)
        contexts = {m: DeviceContext(await store.device(session, tenant, m),
                                     await store.device_state(session, tenant, m),
                                     tuple(await store.open_of(session, tenant, m))) for m in meters}
        situation = SupplySituation(found[0] if found else settings.default_policy, contexts,
                                    ZoneInfo(settings.zone_of(tenant)), now, envelope.event_id,
                                    await store.exemption(session, tenant, payload.account_id))
        after, decision = decide_on_balance(before, payload, situation)
        if after != before:
            await db.save(session, tenant, after, before is not None)
        for meter_id, why in decision.skipped:
            SKIPPED.labels(tenant).inc()
            log.info("account %s: meter %s left alone: %s", payload.account_id, meter_id, why)
        desk = Desk(session, tenant, settings.lifecycle, now, envelope)
        await desk.take(carry_out(decision, tenant, now))
        return desk.envelopes()

    return handle


def registry_handler(clock: Clock) -> Handler:
    """MeterDefined / MeterReplaced → the device as commands knows it (what it can do, whether it is in place)."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, MeterDefined | MeterReplaced):
            return []
        meter = payload.meter
        device = Device(device_id=meter.meter_id, utility=meter.utility, profile=meter.profile,
                        active=meter.status is not MeterStatus.REMOVED, site=meter.groups.building)
        await lock_devices(session, envelope.tenant_id, [meter.meter_id])
        await store.remember_device(session, envelope.tenant_id, payload.revision, device, clock.now())
        return []

    return handle


def lifecycle_handler(clock: Clock, settings: CommandsSettings) -> Handler:
    """Ingest's CommandAcknowledged / CommandFailed / CommandExpired → the command's next step."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, CommandAcknowledged | CommandFailed | CommandExpired):
            return []  # the service's own lifecycle events come back on this topic too
        if envelope.producer == PRODUCER:
            return []  # an expiry this service decided itself
        tenant, now = envelope.tenant_id, clock.now()
        await lock_devices(session, tenant, [payload.device_id])
        command = await store.load(session, tenant, payload.command_id)
        if command is None:
            log.warning("%s for command %s that commands never issued", envelope.event_type, payload.command_id)
            return []
        desk = Desk(session, tenant, settings.lifecycle, now, envelope)
        if isinstance(payload, CommandAcknowledged):
            state = await store.device_state(session, tenant, command.device_id)
            await desk.take([acknowledge(command, payload, state, settings.lifecycle)], received=payload)
        else:
            await desk.take([record_delivery_outcome(command, payload, now)], received=payload)
        return desk.envelopes()

    return handle


def status_handler(clock: Clock, settings: CommandsSettings) -> Handler:
    """DeviceStatusReported → the device's valve or relay state, and the confirmation of what it was told."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, DeviceStatusReported):
            return []
        tenant, now = envelope.tenant_id, clock.now()
        await lock_devices(session, tenant, [payload.meter_id])
        before = await store.device_state(session, tenant, payload.meter_id)
        await store.save_device_state(session, tenant, before, observe_status(before, payload, envelope.event_id), now)
        desk = Desk(session, tenant, settings.lifecycle, now, envelope)
        for command in await store.open_of(session, tenant, payload.meter_id):
            current = await store.load(session, tenant, command.command_id)  # an earlier step may have moved it
            if current is not None and current.is_open:
                await desk.take([confirm_from_status(current, payload, envelope.event_id, now, settings.lifecycle)])
        return desk.envelopes()

    return handle


def account_handler(clock: Clock, settings: CommandsSettings) -> Handler:
    """Billing's MeterLinkedToAccount (connected) / MeterUnlinkedFromAccount (move-out) → the service
    operation's commands: supply opened for the new customer; a final read, then closed, on moving out."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        connected = isinstance(payload, MeterLinkedToAccount) and payload.reason is LinkReason.CONNECTED
        moved_out = isinstance(payload, MeterUnlinkedFromAccount) and payload.reason is LinkReason.MOVE_OUT
        if not connected and not moved_out:
            return []  # room changes and meter swaps keep the supply as it is
        tenant, now = envelope.tenant_id, clock.now()
        found = await store.policy(session, tenant)
        policy = found[0] if found else settings.default_policy
        if (connected and not policy.open_on_connect) or (moved_out and not policy.close_on_move_out):
            return []
        await lock_devices(session, tenant, [payload.meter_id])
        device = await store.device(session, tenant, payload.meter_id)
        if device is None:
            log.warning("account %s: meter %s is not in the registry; no %s commands", payload.account_id,
                        payload.meter_id, "opening" if connected else "move-out")
            return []
        context = OperationContext(operation_id=derived_command_id(envelope.event_id, "operation"),
                                   requested_by=PRODUCER, note=f"billing {envelope.event_type} of account "
                                                               f"{payload.account_id}",
                                   now=now, ttl=policy.command_ttl, account_id=payload.account_id)
        plan: OperationPlan = account_opened([device], context, policy.relay_restore) if connected \
            else move_out([device], context)
        for device_id, why in plan.skipped:
            log.info("account %s: %s: %s", payload.account_id, device_id, why)
        desk = Desk(session, tenant, settings.lifecycle, now, envelope)
        for step in plan.requests:
            result = await desk.submit(step)
            if not isinstance(result, Accepted):
                log.warning("account %s: %s on %s refused: %s", payload.account_id, step.kind.value,
                            step.device_id, result.message)
        return desk.envelopes()

    return handle


def alarm_handler(clock: Clock, settings: CommandsSettings) -> Handler:
    """AlarmRaised on a meter → the commands and proposals of the tenant's automation rules."""

    async def handle(session: AsyncSession, envelope: Envelope[Any]) -> Sequence[Envelope[Any]]:
        payload = envelope.payload
        if not isinstance(payload, AlarmRaised):
            return []
        tenant, now = envelope.tenant_id, clock.now()
        rules = await store.rules(session, tenant)
        decision = decide_on_alarm(rules, payload, now)
        if not decision.requests and not decision.proposals:
            return []
        await lock_devices(session, tenant, [payload.subject_id])
        desk = Desk(session, tenant, settings.lifecycle, now, envelope)
        for requested in decision.requests:
            result = await desk.submit(requested)
            if not isinstance(result, Accepted):
                log.warning("rule %s on %s refused: %s", requested.rule_id, requested.device_id, result.message)
        for proposal in decision.proposals:
            if await store.propose(session, tenant, proposal):
                desk.published.append(proposal)
        return desk.envelopes()

    return handle


async def fire_due(sessions: Callable[[], Any], clock: Clock, settings: CommandsSettings,
                   wake_relay: Callable[[], None]) -> int:
    """Run the timer of every command that is due: send, re-send, fail or expire; returns how many moved."""
    async with sessions() as session:
        due = await store.due(session, clock.now(), settings.timer_batch)
    moved = 0
    for tenant, command_id, device_id in due:
        async with sessions() as session, session.begin():
            now: datetime = clock.now()
            await lock_devices(session, tenant, [device_id])
            command = await store.load(session, tenant, uuid.UUID(command_id))
            if command is None or not command.is_open:
                continue
            desk = Desk(session, tenant, settings.lifecycle, now)
            state = await store.device_state(session, tenant, device_id)
            await desk.take([on_timer(command, state, now, settings.lifecycle)])
            if desk.published:
                await stage(session, db.outbox, desk.envelopes(), now)
                moved += 1
    if moved:
        wake_relay()
    return moved
