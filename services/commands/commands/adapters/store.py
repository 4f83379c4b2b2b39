"""The commands service's tables: every command with its event log, devices and their read-back state,
and a tenant's configuration (cut-off policy, exemptions, automation rules, proposals).

A command is kept as its document (the core's Command as JSON) next to the columns queries filter
on; its lifecycle events are appended, never changed, so its history is what was published.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from amiflow_runtime.db import UtcDateTime
from amiflow_schemas.events.commands import CommandProposed
from amiflow_schemas.payload import EventPayload
from pydantic import BaseModel
from sqlalchemy import Column, Integer, String, Table, Text, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commands.adapters.db import metadata
from commands.core.automation import AutomationRule
from commands.core.capabilities import Device
from commands.core.devices import DeviceState
from commands.core.model import OPEN, Command, CommandState
from commands.core.policy import AccountExemption, CutOffPolicy

commands = Table(
    "commands", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("command_id", String(36), primary_key=True),
    Column("device_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("account_id", String(64)),
    Column("batch_id", String(64)),
    Column("idempotency_key", String(128)),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("next_due_at", UtcDateTime()),  # when the timer must look at it; None once it ended
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("document", Text, nullable=False),
)
command_events = Table(
    "command_events", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("command_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("payload", Text, nullable=False),
)
devices = Table(
    "devices", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("device_id", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("device", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
device_states = Table(
    "device_states", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("device_id", String(128), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
cut_off_policies = Table(
    "cut_off_policies", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("policy_key", String(128), primary_key=True),  # "current": one policy per tenant
    Column("document", Text, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
automation_rules = Table(
    "automation_rules", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("rule_id", String(128), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
exemptions = Table(
    "exemptions", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
proposals = Table(
    "proposals", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("proposal_id", String(36), primary_key=True),
    Column("device_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # open, accepted
    Column("command_id", String(36)),  # the command an acceptance requested
    Column("document", Text, nullable=False),
    Column("proposed_at", UtcDateTime(), nullable=False),
)
CURRENT_POLICY = "current"
_OPEN_STATES = [s.value for s in OPEN]


def _command(row: Any) -> Command:
    return Command.model_validate_json(row.document)


async def load(session: AsyncSession, tenant_id: str, command_id: Any) -> Command | None:
    row = (await session.execute(select(commands.c.document).where(
        commands.c.tenant_id == tenant_id, commands.c.command_id == str(command_id)))).first()
    return None if row is None else _command(row)


async def by_key(session: AsyncSession, tenant_id: str, idempotency_key: str | None) -> Command | None:
    """The command an idempotency key already asked for."""
    if idempotency_key is None:
        return None
    row = (await session.execute(select(commands.c.document).where(
        commands.c.tenant_id == tenant_id, commands.c.idempotency_key == idempotency_key))).first()
    return None if row is None else _command(row)


async def open_of(session: AsyncSession, tenant_id: str, device_id: str) -> list[Command]:
    """The device's open commands, oldest first."""
    rows = await session.execute(select(commands.c.document).where(
        commands.c.tenant_id == tenant_id, commands.c.device_id == device_id,
        commands.c.state.in_(_OPEN_STATES)).order_by(commands.c.requested_at))
    return [_command(r) for r in rows]


async def waiting_after(session: AsyncSession, tenant_id: str, ended: Command) -> list[Command]:
    """The device's commands queued after ``ended`` (they wait in REQUESTED)."""
    return [c for c in await open_of(session, tenant_id, ended.device_id)
            if c.request.after_command_id == ended.command_id]


async def put(session: AsyncSession, tenant_id: str, before: Command | None, after: Command,
              events: Sequence[EventPayload], due: datetime | None, now: datetime) -> None:
    """Keep the command after a transition and append its events to its log."""
    r = after.request
    values = {"state": after.state.value, "next_due_at": due, "updated_at": now, "document": after.model_dump_json()}
    if before is None:
        await session.execute(insert(commands).values(
            tenant_id=tenant_id, command_id=str(after.command_id), device_id=after.device_id, kind=after.kind.value,
            account_id=r.account_id, batch_id=r.batch_id, idempotency_key=r.idempotency_key,
            requested_at=r.requested_at, **values))
    else:
        await session.execute(update(commands).where(
            commands.c.tenant_id == tenant_id, commands.c.command_id == str(after.command_id)).values(**values))
    key = and_(command_events.c.tenant_id == tenant_id, command_events.c.command_id == str(after.command_id))
    seq = (await session.execute(select(func.max(command_events.c.seq)).where(key))).scalar() or 0
    if events:
        await session.execute(insert(command_events), [{
            "tenant_id": tenant_id, "command_id": str(after.command_id), "seq": seq + n + 1,
            "event_type": type(e).EVENT_TYPE, "occurred_at": now, "payload": e.model_dump_json()}
            for n, e in enumerate(events)])


async def history(session: AsyncSession, tenant_id: str, command_id: Any) -> list[dict[str, Any]]:
    """The command's lifecycle events, oldest first, as they were published."""
    rows = await session.execute(select(command_events).where(
        command_events.c.tenant_id == tenant_id, command_events.c.command_id == str(command_id)).order_by(
        command_events.c.seq))
    return [{"event_type": r.event_type, "recorded_at": r.occurred_at, "payload": json.loads(r.payload)}
            for r in rows]


async def find(session: AsyncSession, tenant_id: str, *, device_id: str | None = None,
               state: CommandState | None = None, since: datetime | None = None, until: datetime | None = None,
               batch_id: str | None = None, limit: int = 100) -> list[Command]:
    """Commands by device, state, batch and request time, newest first."""
    query = select(commands.c.document).where(commands.c.tenant_id == tenant_id)
    for column, value in ((commands.c.device_id, device_id), (commands.c.batch_id, batch_id),
                          (commands.c.state, state.value if state else None)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(commands.c.requested_at >= since)
    if until is not None:
        query = query.where(commands.c.requested_at < until)
    rows = await session.execute(query.order_by(commands.c.requested_at.desc(), commands.c.command_id).limit(limit))
    return [_command(r) for r in rows]


async def due(session: AsyncSession, now: datetime, limit: int) -> list[tuple[str, str, str]]:
    """(tenant, command id, device id) of open commands whose timer is due, the most overdue first."""
    rows = await session.execute(select(commands.c.tenant_id, commands.c.command_id, commands.c.device_id).where(
        commands.c.next_due_at <= now).order_by(commands.c.next_due_at).limit(limit))
    return [(r.tenant_id, r.command_id, r.device_id) for r in rows]


async def device(session: AsyncSession, tenant_id: str, device_id: str) -> Device | None:
    row = (await session.execute(select(devices.c.device).where(
        devices.c.tenant_id == tenant_id, devices.c.device_id == device_id))).first()
    return None if row is None else Device.model_validate_json(row.device)


async def devices_of(session: AsyncSession, tenant_id: str, device_ids: Sequence[str]) -> dict[str, Device]:
    rows = await session.execute(select(devices.c.device).where(
        devices.c.tenant_id == tenant_id, devices.c.device_id.in_(list(device_ids))))
    found = [Device.model_validate_json(r.device) for r in rows]
    return {d.device_id: d for d in found}


async def remember_device(session: AsyncSession, tenant_id: str, revision: int, found: Device,
                          now: datetime) -> bool:
    """Keep the registry's newest revision of a device; False for an older or repeated one."""
    row = (await session.execute(select(devices.c.revision, devices.c.device).where(
        devices.c.tenant_id == tenant_id, devices.c.device_id == found.device_id))).first()
    if row is None:
        await session.execute(insert(devices).values(tenant_id=tenant_id, device_id=found.device_id,
                                                     revision=revision, device=found.model_dump_json(),
                                                     updated_at=now))
        return True
    if revision <= row.revision:
        return False
    kinds = Device.model_validate_json(row.device).kinds  # capabilities an operator stated survive
    kept = found if found.kinds is not None else found.model_copy(update={"kinds": kinds})
    await session.execute(update(devices).where(
        devices.c.tenant_id == tenant_id, devices.c.device_id == found.device_id).values(
        revision=revision, device=kept.model_dump_json(), updated_at=now))
    return True


async def device_state(session: AsyncSession, tenant_id: str, device_id: str) -> DeviceState | None:
    row = (await session.execute(select(device_states.c.state).where(
        device_states.c.tenant_id == tenant_id, device_states.c.device_id == device_id))).first()
    return None if row is None else DeviceState.model_validate_json(row.state)


async def save_device_state(session: AsyncSession, tenant_id: str, before: DeviceState | None, after: DeviceState,
                            now: datetime) -> None:
    if before == after:
        return
    if before is None:
        await session.execute(insert(device_states).values(tenant_id=tenant_id, device_id=after.device_id,
                                                           state=after.model_dump_json(), updated_at=now))
    else:
        await session.execute(update(device_states).where(
            device_states.c.tenant_id == tenant_id, device_states.c.device_id == after.device_id).values(
            state=after.model_dump_json(), updated_at=now))


async def _document(session: AsyncSession, table: Table, tenant_id: str, key: str) -> Any:
    column = table.c[table.primary_key.columns.keys()[1]]
    return (await session.execute(select(table).where(table.c.tenant_id == tenant_id, column == key))).first()


async def _replace(session: AsyncSession, table: Table, tenant_id: str, key: str, document: BaseModel, by: str,
                   now: datetime) -> None:
    name = table.primary_key.columns.keys()[1]
    await session.execute(delete(table).where(table.c.tenant_id == tenant_id, table.c[name] == key))
    await session.execute(insert(table).values(tenant_id=tenant_id, **{name: key}, document=document.model_dump_json(),
                                               updated_by=by, updated_at=now))


async def policy(session: AsyncSession, tenant_id: str) -> tuple[CutOffPolicy, str, datetime] | None:
    """The tenant's cut-off policy, who set it and when; None when it has none."""
    row = await _document(session, cut_off_policies, tenant_id, CURRENT_POLICY)
    return None if row is None else (CutOffPolicy.model_validate_json(row.document), row.updated_by, row.updated_at)


async def save_policy(session: AsyncSession, tenant_id: str, found: CutOffPolicy, by: str, now: datetime) -> None:
    await _replace(session, cut_off_policies, tenant_id, CURRENT_POLICY, found, by, now)


async def exemption(session: AsyncSession, tenant_id: str, account_id: str) -> AccountExemption | None:
    row = await _document(session, exemptions, tenant_id, account_id)
    return None if row is None else AccountExemption.model_validate_json(row.document)


async def save_exemption(session: AsyncSession, tenant_id: str, found: AccountExemption, by: str,
                         now: datetime) -> None:
    await _replace(session, exemptions, tenant_id, found.account_id, found, by, now)


async def remove_exemption(session: AsyncSession, tenant_id: str, account_id: str) -> bool:
    result = await session.execute(delete(exemptions).where(exemptions.c.tenant_id == tenant_id,
                                                            exemptions.c.account_id == account_id))
    return bool(getattr(result, "rowcount", 0))


async def rules(session: AsyncSession, tenant_id: str) -> list[AutomationRule]:
    rows = await session.execute(select(automation_rules.c.document).where(
        automation_rules.c.tenant_id == tenant_id).order_by(automation_rules.c.rule_id))
    return [AutomationRule.model_validate_json(r.document) for r in rows]


async def save_rule(session: AsyncSession, tenant_id: str, rule: AutomationRule, by: str, now: datetime) -> None:
    await _replace(session, automation_rules, tenant_id, rule.rule_id, rule, by, now)


async def propose(session: AsyncSession, tenant_id: str, proposal: CommandProposed) -> bool:
    """Keep a proposal; False when the same one was made before."""
    if await _document(session, proposals, tenant_id, str(proposal.proposal_id)) is not None:
        return False
    await session.execute(insert(proposals).values(
        tenant_id=tenant_id, proposal_id=str(proposal.proposal_id), device_id=proposal.device_id, state="open",
        command_id=None, document=proposal.model_dump_json(), proposed_at=proposal.proposed_at))
    return True


async def proposal(session: AsyncSession, tenant_id: str, proposal_id: Any) -> tuple[CommandProposed, str,
                                                                                  str | None] | None:
    """A proposal, its state and the command its acceptance requested."""
    row = await _document(session, proposals, tenant_id, str(proposal_id))
    if row is None:
        return None
    return CommandProposed.model_validate_json(row.document), row.state, row.command_id


async def open_proposals(session: AsyncSession, tenant_id: str, now: datetime) -> list[CommandProposed]:
    rows = await session.execute(select(proposals.c.document).where(
        proposals.c.tenant_id == tenant_id, proposals.c.state == "open").order_by(proposals.c.proposed_at))
    found = [CommandProposed.model_validate_json(r.document) for r in rows]
    return [p for p in found if p.expires_at > now]


async def accepted(session: AsyncSession, tenant_id: str, proposal_id: Any, command_id: Any) -> None:
    await session.execute(update(proposals).where(
        proposals.c.tenant_id == tenant_id, proposals.c.proposal_id == str(proposal_id)).values(
        state="accepted", command_id=str(command_id)))
