"""The gateway's tables: DTU connection state (for the API process) and the downlink mailbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from amiflow_runtime.db import UtcDateTime
from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters.db import metadata
from ingest.core.downlink import MailboxCommand, MailboxState

# One row per DTU that ever connected; the worker holding the link keeps it current.
gateway_connections = Table(
    "gateway_connections", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("gateway_id", String(128), primary_key=True),
    Column("online", Boolean, nullable=False),
    Column("remote_address", String(64), nullable=True),
    Column("instance", String(128), nullable=False),
    Column("connected_at", UtcDateTime(), nullable=True),
    Column("disconnected_at", UtcDateTime(), nullable=True),
    Column("last_seen_at", UtcDateTime(), nullable=True),
    Column("frames_in", Integer, nullable=False, default=0),
    Column("signal_csq", Integer, nullable=True),
)

# Commands waiting for (or travelling to) their device: a sleepy meter gets its command on its next
# uplink, a DTU that is offline gets it when it logs in again. One row per command id: a retry of the
# command makes the same row pending again (ingest.core.downlink.arrival).
downlink_commands = Table(
    "downlink_commands", metadata,
    Column("command_id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("meter_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # a DownlinkKind: valve, relay, read_now, time_sync, set_parameter
    Column("action", String(32), nullable=True),  # the valve or relay action; None for the other kinds
    Column("parameter_name", String(128), nullable=True),  # set_parameter only
    Column("parameter_value", Text, nullable=True),
    Column("not_before", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("state", String(16), nullable=False),  # a MailboxState: pending, acknowledged, failed, expired
    Column("attempts", Integer, nullable=False),
    Column("detail", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_downlink_pending", "state", "tenant_id", "meter_id"),
)


async def mark_online(session: AsyncSession, *, tenant_id: str, gateway_id: str, remote: str, instance: str,
                      at: datetime) -> None:
    """Record a login (insert or update)."""
    values = {"online": True, "remote_address": remote, "instance": instance, "connected_at": at,
              "last_seen_at": at, "disconnected_at": None}
    key = and_(gateway_connections.c.tenant_id == tenant_id, gateway_connections.c.gateway_id == gateway_id)
    done = await session.execute(update(gateway_connections).where(key).values(**values))
    if done.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(insert(gateway_connections).values(tenant_id=tenant_id, gateway_id=gateway_id,
                                                                 frames_in=0, **values))


@dataclass(frozen=True)
class LinkRecord:
    """A held (or just closed) link as its connection row knows it: the login it is, and what it counted."""

    tenant_id: str
    gateway_id: str
    connected_at: datetime  # which login: a row re-marked by a newer login of the same DTU is not this link's
    frames_in: int
    seen_at: datetime


def _this_login(instance: str) -> Any:
    return and_(gateway_connections.c.tenant_id == bindparam("link_tenant"),
                gateway_connections.c.gateway_id == bindparam("link_gateway"),
                gateway_connections.c.connected_at == bindparam("link_connected_at",
                                                                type_=gateway_connections.c.connected_at.type),
                gateway_connections.c.instance == instance)


def _parameters(links: Sequence[LinkRecord]) -> list[dict[str, Any]]:
    return [{"link_tenant": link.tenant_id, "link_gateway": link.gateway_id, "link_connected_at": link.connected_at,
             "link_frames": link.frames_in, "link_seen_at": link.seen_at} for link in links]


async def mark_many_seen(session: AsyncSession, links: Sequence[LinkRecord], instance: str) -> None:
    """Refresh last-seen and counters of held links in one statement; a row already offline stays so."""
    if links:
        await session.execute(update(gateway_connections).where(
            _this_login(instance), gateway_connections.c.online.is_(True)).values(
            last_seen_at=bindparam("link_seen_at"), frames_in=bindparam("link_frames")), _parameters(links))


async def mark_many_offline(session: AsyncSession, links: Sequence[LinkRecord], instance: str) -> None:
    """Record the disconnect of closed links (``seen_at``: when each closed) in one statement."""
    if links:
        await session.execute(update(gateway_connections).where(_this_login(instance)).values(
            online=False, last_seen_at=bindparam("link_seen_at"), disconnected_at=bindparam("link_seen_at"),
            frames_in=bindparam("link_frames")), _parameters(links))


async def connection(session: AsyncSession, tenant_id: str, gateway_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(gateway_connections).where(
        gateway_connections.c.tenant_id == tenant_id, gateway_connections.c.gateway_id == gateway_id))).first()
    return None if row is None else row._asdict()


@dataclass(frozen=True)
class MailboxEntry:
    """What a new send of a command needs to know of its mailbox row."""

    state: MailboxState
    attempts: int
    detail: str | None


async def mailbox_entry(session: AsyncSession, command_id: UUID) -> MailboxEntry | None:
    """The mailbox row of a command, if it has one."""
    row = (await session.execute(select(downlink_commands.c.state, downlink_commands.c.attempts,
                                        downlink_commands.c.detail).where(
        downlink_commands.c.command_id == str(command_id)))).first()
    return None if row is None else MailboxEntry(MailboxState(row.state), row.attempts, row.detail)


async def add_to_mailbox(session: AsyncSession, tenant_id: str, command: MailboxCommand, at: datetime) -> None:
    """A new pending row for the first send of a command."""
    parameter = command.parameter
    await session.execute(insert(downlink_commands).values(
        command_id=str(command.command_id), tenant_id=tenant_id, meter_id=command.meter_id, kind=command.kind.value,
        action=command.action, parameter_name=parameter.name if parameter else None,
        parameter_value=parameter.value if parameter else None, not_before=command.not_before,
        expires_at=command.expires_at, state=MailboxState.PENDING.value, attempts=0, detail=None, created_at=at,
        updated_at=at,
    ))


async def change_mailbox(session: AsyncSession, command_id: UUID, seen: MailboxState, **values: Any) -> bool:
    """Update a row only if it is still in the state we saw; False when a delivery changed it first."""
    done = await session.execute(update(downlink_commands).where(
        downlink_commands.c.command_id == str(command_id), downlink_commands.c.state == seen.value).values(**values))
    return bool(done.rowcount)  # type: ignore[attr-defined]
