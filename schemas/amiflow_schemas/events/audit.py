"""The audit trail's anchor: every record a service appends to its hash chain, published as it was hashed.

Each service keeps one append-only chain of audit records in its own database (who did what, when, from
where, why, and how it ended). A copy of every record travels on ``amiflow.audit`` so that the chain also
lives outside the database: a DBA who rewrites the table and recomputes the hashes still disagrees with
what was published. ``record`` is the canonical JSON text exactly as hashed, so a consumer can recompute
``record_hash = sha256(prev_hash + record)`` without re-serialising anything.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, PositiveInt, StringConstraints

from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import Identifier, ServiceName

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest as 64 lowercase hex digits."""

# A record keeps request bodies size-capped (16 KiB) plus who, where and why; 256 KiB leaves room and
# keeps the event under Kafka's default 1 MB record limit.
CanonicalJson = Annotated[str, StringConstraints(min_length=2, max_length=262_144)]


class AuditRecordKind(StrEnum):
    """What an audit record says."""

    ATTEMPT = "attempt"  # an operator action is about to run (written before the handler)
    OUTCOME = "outcome"  # how that action ended: status and the ids in the answer
    REFUSED = "refused"  # a call refused for want of a valid token or permission (401/403): a security event
    REJECTED = "rejected"  # a state-changing call answered before it could run (unreadable body, ...)
    UNDO = "undo"  # an action is being, or has been, compensated (links the compensating action)


class AuditRecorded(EventPayload):
    """A record appended to a service's audit chain, with its place in the chain and its hash."""

    EVENT_TYPE: ClassVar[str] = "AuditRecorded"
    EVENT_VERSION: ClassVar[int] = 1

    service: ServiceName
    chain_id: UUID  # one chain per service database; tells copies of one service's chains apart
    seq: PositiveInt  # the record's place in its chain, 1, 2, 3 … without gaps
    record_id: UUID
    tenant_id: Identifier  # the tenant the action was taken in (the topic's key)
    kind: AuditRecordKind
    recorded_at: AwareDatetime
    record: CanonicalJson  # the canonical JSON that was hashed
    prev_hash: Sha256Hex  # the previous record's hash; 64 zeros for the first
    record_hash: Sha256Hex  # sha256(prev_hash + record), hex
