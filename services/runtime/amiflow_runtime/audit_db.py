"""The audit chain in a service's own database: the append-only table, appends, reads, and its migration.

One chain per service database. Appends are serialised — a PostgreSQL advisory transaction lock (SQLite
has one writer at a time already) — so each record's seq and prev_hash are those of the record before it.
Every appended record is staged in the same transaction as an AuditRecorded event on amiflow.audit: the
record and its anchor outside the database are kept or lost together.

Append-only is enforced below the application too: triggers refuse UPDATE, DELETE (and, on PostgreSQL,
TRUNCATE) of audit_records. A database owner can still drop them; that is what `amiflow audit verify`
(and its comparison with the published copy) is for.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amiflow_schemas import new_envelope
from amiflow_schemas.events.audit import AuditRecorded
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from amiflow_runtime.audit import (
    GENESIS_HASH,
    ChainVerifier,
    RecordKind,
    Sealed,
    StoredRecord,
    columns_of,
    seal,
)
from amiflow_runtime.audit_request import trusted_networks
from amiflow_runtime.clock import Clock
from amiflow_runtime.db import UtcDateTime, lock_for_transaction
from amiflow_runtime.outbox import stage
from amiflow_runtime.service import ServiceRuntime

CHAIN_LOCK = "amiflow-audit-chain"
_metadata = MetaData()


def _columns() -> list[Any]:
    return [
        Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
        Column("record_id", String(36), nullable=False, unique=True),
        Column("chain_id", String(36), nullable=False),
        Column("tenant_id", String(128), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("recorded_at", UtcDateTime(), nullable=False),
        # Query columns copied from the record; verify checks they still say what the hashed record says.
        Column("actor", Text, nullable=True),
        Column("action", Text, nullable=True),
        Column("objects", Text, nullable=True),  # "|id|id|" for a LIKE '%|id|%' match
        Column("status", Integer, nullable=True),
        Column("refers_to", String(36), nullable=True),  # an outcome's attempt, an undo's target
        Column("record", Text, nullable=False),  # the canonical JSON that was hashed
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    ]


audit_records = Table("audit_records", _metadata, *_columns(),
                      Index("ix_audit_records_tenant", "tenant_id", "seq"),
                      Index("ix_audit_records_refers_to", "refers_to"))

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION amiflow_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP;
END
$$ LANGUAGE plpgsql"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records "
    "FOR EACH ROW EXECUTE FUNCTION amiflow_audit_append_only()",
    "CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION amiflow_audit_append_only()",
)
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER audit_records_no_{op.lower()} BEFORE {op} ON audit_records "
    f"BEGIN SELECT RAISE(ABORT, 'audit_records is append-only: {op} refused'); END"
    for op in ("UPDATE", "DELETE")
)


def create_audit_table(op: Any) -> None:
    """Migration step every service shares: the audit_records table and its append-only triggers."""
    op.create_table("audit_records", *_columns())
    op.create_index("ix_audit_records_tenant", "audit_records", ["tenant_id", "seq"])
    op.create_index("ix_audit_records_refers_to", "audit_records", ["refers_to"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in (_PG_FUNCTION, *_PG_TRIGGERS):
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def drop_audit_table(op: Any) -> None:
    """Undo create_audit_table (a downgrade destroys the trail: only ever on a database being thrown away)."""
    op.drop_table("audit_records")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS amiflow_audit_append_only()")


def _anchor(sealed: Sealed, service: str) -> Any:
    document = sealed.document
    refers_to = document.get("attempt") or document.get("target")
    at = columns_of(document)["recorded_at"]
    payload = AuditRecorded(service=service, chain_id=uuid.UUID(document["chain"]), seq=document["seq"],
                            record_id=uuid.UUID(document["id"]), tenant_id=document["tenant"],
                            kind=RecordKind(document["kind"]), recorded_at=at, record=sealed.record,
                            prev_hash=sealed.prev_hash, record_hash=sealed.hash)
    # The events of one action share its attempt's id as correlation id; causation names what it refers to.
    action = refers_to if document["kind"] == RecordKind.OUTCOME.value else document["id"]
    return new_envelope(payload, event_id=payload.record_id, tenant_id=document["tenant"], key=document["tenant"],
                        occurred_at=at, recorded_at=at, producer=service, correlation_id=uuid.UUID(action),
                        causation_id=uuid.UUID(refers_to) if refers_to else None)


async def append(session: AsyncSession, outbox: Table, documents: Sequence[Mapping[str, Any]], *, service: str,
                 clock: Clock) -> list[Sealed]:
    """Append records at the chain's head inside the caller's transaction, and stage their anchors."""
    await lock_for_transaction(session, CHAIN_LOCK)
    head = (await session.execute(select(audit_records.c.seq, audit_records.c.hash, audit_records.c.chain_id)
                                  .order_by(audit_records.c.seq.desc()).limit(1))).first()
    seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    chain_id = head.chain_id if head else str(uuid.uuid4())
    now = clock.now()  # read under the lock, so times never go backwards along the chain on one clock
    sealed_records: list[Sealed] = []
    for document in documents:
        seq += 1
        sealed = seal(document, service=service, chain_id=chain_id, seq=seq, record_id=str(uuid.uuid4()), at=now,
                      prev_hash=prev_hash)
        sealed_records.append(sealed)
        prev_hash = sealed.hash
    await session.execute(insert(audit_records), [
        {**columns_of(s.document), "record": s.record, "prev_hash": s.prev_hash, "hash": s.hash}
        for s in sealed_records])
    await stage(session, outbox, [_anchor(s, service) for s in sealed_records], now)
    return sealed_records


@dataclass
class AuditTrail:
    """A service's audit chain: where it lives and how its anchors are published."""

    service: str
    sessions: async_sessionmaker[AsyncSession]
    outbox: Table
    clock: Clock
    on_staged: Callable[[], None] = lambda: None
    trusted_proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()

    async def record(self, *documents: Mapping[str, Any]) -> list[Sealed]:
        """Append records in a transaction of their own; returns them as sealed."""
        async with self.sessions() as session, session.begin():
            sealed = await append(session, self.outbox, documents, service=self.service, clock=self.clock)
        self.on_staged()
        return sealed

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[AsyncSession]:
        """A transaction holding the chain's lock: read and decide, then append, with no append in between."""
        async with self.sessions() as session, session.begin():
            await lock_for_transaction(session, CHAIN_LOCK)
            yield session
        self.on_staged()

    async def append_in(self, session: AsyncSession, *documents: Mapping[str, Any]) -> list[Sealed]:
        """Append inside a transaction opened by `locked`."""
        return await append(session, self.outbox, documents, service=self.service, clock=self.clock)


class _RuntimeClock:
    """The runtime's clock as it is now (tests swap runtime.clock after the app is built)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def now(self) -> datetime:
        return self.runtime.clock.now()


def runtime_trail(runtime: ServiceRuntime) -> AuditTrail:
    """The audit chain of a service process's database, published through its outbox, on its clock."""
    return AuditTrail(service=runtime.settings.service_name, sessions=runtime.sessions, outbox=runtime.outbox,
                      clock=_RuntimeClock(runtime), on_staged=runtime.wake_relay,
                      trusted_proxies=trusted_networks(runtime.settings.trusted_proxies))


def stored(row: Any) -> StoredRecord:
    """A table row as the verifier reads it."""
    return StoredRecord(**{name: getattr(row, name) for name in StoredRecord.__dataclass_fields__})


async def verify_chain(sessions: async_sessionmaker[AsyncSession], service: str, *, batch: int = 1000,
                       check: Callable[[StoredRecord], None] | None = None) -> ChainVerifier:
    """Recompute the whole chain in sequence order, `batch` rows at a time; `check` sees every row too."""
    verifier = ChainVerifier(service)
    after = 0
    while True:
        async with sessions() as session:
            rows = (await session.execute(select(audit_records).where(audit_records.c.seq > after)
                                          .order_by(audit_records.c.seq).limit(batch))).all()
        for row in rows:
            record = stored(row)
            verifier.feed(record)
            if check is not None:
                check(record)
        if len(rows) < batch:
            return verifier
        after = rows[-1].seq
