"""The audit trail's pure core: what a record says, its canonical JSON, and the hash chain that seals it.

Every state-changing call to a service API leaves records in that service's own chain (audit_http.py
captures them, audit_db.py appends them):

  attempt   written before the handler runs: who (the token's subject, roles, tenants, token id), when,
            from where (client address, user agent), what (method, route, path parameters, query, body —
            secrets redacted, size-capped, uploads by size and sha256) and why (X-Amiflow-Reason or a
            reason/why/note/comment field of the body);
  outcome   written after the answer: its status and the ids in it (a created command's id …);
  refused   a call refused for want of a valid token or permission (401/403), of any method;
  rejected  a state-changing call answered before its handler could run (an unreadable body …);
  undo      an action being compensated, and how that ended (the original is never updated).

A process that dies mid-action leaves an attempt without an outcome: "outcome unknown", never a silent
gap. Each record is canonical JSON (sorted keys, no insignificant space, no floats) and its hash is
sha256(prev_hash + record), so editing, deleting or reordering a record breaks the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amiflow_schemas.events.audit import AuditRecordKind as RecordKind

GENESIS_HASH = "0" * 64
RECORD_VERSION = 1
# The tenant of a refused call whose token could not be verified: nobody's, seen by platform admins only.
UNAUTHENTICATED_TENANT = "_unauthenticated"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
__all__ = ["RecordKind"]  # the records' kinds are the published event's; re-exported for the adapters


# --- Canonical form and hashing -----------------------------------------------------------------------

def canonical_json(document: Mapping[str, Any]) -> str:
    """The one text a record is hashed as: sorted keys, no spaces, UTF-8 characters kept, no floats."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(prev_hash: str, record: str) -> str:
    """sha256(prev_hash + record) as hex: each record's hash seals every record before it."""
    return hashlib.sha256((prev_hash + record).encode()).hexdigest()


def instant(at: datetime) -> str:
    """An aware datetime as the fixed-width UTC text records carry."""
    if at.tzinfo is None:
        raise ValueError("audit times are aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def parse_json_body(raw: bytes) -> Any:
    """A request body's JSON with non-integer numbers kept as their exact text (no float rounding)."""
    return json.loads(raw, parse_float=str, parse_constant=str)


# --- Records ---------------------------------------------------------------------------------------------

def action_of(method: str, route: str) -> str:
    """How records and queries name an action: the method and the route template."""
    return f"{method.upper()} {route}"


def attempt_record(*, tenant: str, who: Mapping[str, Any], where: Mapping[str, Any], what: Mapping[str, Any],
                   why: str | None, objects: list[str], before: Mapping[str, Any] | None = None,
                   undoes: str | None = None) -> dict[str, Any]:
    """An action about to run; `before` is the state its undo will need, `undoes` the action it compensates."""
    record = {"kind": RecordKind.ATTEMPT.value, "tenant": tenant, "who": dict(who), "where": dict(where),
              "what": dict(what), "why": why, "objects": objects}
    if before is not None:
        record["before"] = dict(before)
    if undoes is not None:
        record["undoes"] = undoes
    return record


def outcome_record(*, tenant: str, attempt_id: str, status: int, ids: Mapping[str, list[str]],
                   error: str | None = None) -> dict[str, Any]:
    """How the attempt `attempt_id` ended: the answer's status and the ids in it."""
    record: dict[str, Any] = {"kind": RecordKind.OUTCOME.value, "tenant": tenant, "attempt": attempt_id,
                              "status": status, "ids": dict(ids)}
    if error is not None:
        record["error"] = error
    return record


def answered_record(kind: RecordKind, *, tenant: str, who: Mapping[str, Any], where: Mapping[str, Any],
                    what: Mapping[str, Any], status: int, reason: str | None) -> dict[str, Any]:
    """A call answered without running (refused: 401/403; rejected: e.g. a body that is not JSON)."""
    return {"kind": kind.value, "tenant": tenant, "who": dict(who), "where": dict(where), "what": dict(what),
            "status": status, "why": reason}


def undo_record(*, tenant: str, who: Mapping[str, Any], target: str, state: str, by: str,
                compensation: str | None = None, status: int | None = None,
                reason: str | None = None) -> dict[str, Any]:
    """The action `target` being compensated (started), or compensated (done) or not (failed) by the undo
    request `by` through the compensating action `compensation`."""
    record: dict[str, Any] = {"kind": RecordKind.UNDO.value, "tenant": tenant, "who": dict(who), "target": target,
                              "state": state, "by": by, "why": reason}
    if compensation is not None:
        record["compensation"] = compensation
    if status is not None:
        record["status"] = status
    return record


@dataclass(frozen=True)
class Sealed:
    """A record placed in a chain: its document, the canonical text and the hash over it."""

    document: dict[str, Any]
    record: str
    prev_hash: str
    hash: str


def seal(document: Mapping[str, Any], *, service: str, chain_id: str, seq: int, record_id: str, at: datetime,
         prev_hash: str) -> Sealed:
    """Place `document` in a chain after the record whose hash is `prev_hash`."""
    placed = {**document, "v": RECORD_VERSION, "service": service, "chain": chain_id, "seq": seq, "id": record_id,
              "at": instant(at)}
    text = canonical_json(placed)
    return Sealed(placed, text, prev_hash, chain_hash(prev_hash, text))


def columns_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The table's query columns, derived from a record; verify checks they still agree with it."""
    what = document.get("what") or {}
    objects = list(document.get("objects") or [])
    objects += [v for values in (document.get("ids") or {}).values() for v in values]
    return {
        "seq": document["seq"], "record_id": document["id"], "chain_id": document["chain"],
        "tenant_id": document["tenant"], "kind": document["kind"],
        "recorded_at": datetime.fromisoformat(document["at"]),
        "actor": (document.get("who") or {}).get("subject"),
        "action": action_of(what["method"], what["route"]) if what else None,
        "objects": "|" + "|".join(objects) + "|" if objects else None,
        "status": document.get("status"),
        "refers_to": document.get("attempt") or document.get("target"),
    }


@dataclass(frozen=True)
class StoredRecord:
    """One row of audit_records as stored."""

    seq: int
    record_id: str
    chain_id: str
    tenant_id: str
    kind: str
    recorded_at: datetime
    actor: str | None
    action: str | None
    objects: str | None
    status: int | None
    refers_to: str | None
    record: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Problem:
    """Something wrong with a chain: where and what."""

    seq: int
    what: str


@dataclass
class ChainVerifier:
    """Recomputes a chain record by record (in sequence order), so a chain of any length fits in memory."""

    service: str
    count: int = 0
    problems: list[Problem] = field(default_factory=list)
    chain_id: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    open_attempts: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (seq, tenant) until its outcome

    def feed(self, row: StoredRecord) -> None:
        """Check one row against the previous one and against its own hash."""
        self.count += 1
        expected = self.head_seq + 1
        if row.seq > expected:
            missing = str(expected) if row.seq == expected + 1 else f"{expected}-{row.seq - 1}"
            self.problems.append(Problem(row.seq, f"gap in sequence numbers: {missing} missing before it"))
        elif row.seq < expected:
            self.problems.append(Problem(row.seq, f"sequence number out of order after {self.head_seq}"))
        if row.prev_hash != self.head_hash:
            self.problems.append(Problem(row.seq, "broken link: its prev_hash is not the hash of the record "
                                                  f"before it (seq {self.head_seq})"))
        if chain_hash(row.prev_hash, row.record) != row.hash:
            self.problems.append(Problem(row.seq, "hash mismatch: the record is not what was hashed (altered)"))
        self._check_document(row)
        self.head_seq, self.head_hash = row.seq, row.hash

    def _check_document(self, row: StoredRecord) -> None:
        try:
            document = json.loads(row.record)
            columns = columns_of(document)
        except (ValueError, KeyError, TypeError):
            self.problems.append(Problem(row.seq, "the record is not a readable audit record"))
            return
        if canonical_json(document) != row.record:
            self.problems.append(Problem(row.seq, "the record is not in canonical form"))
        stored = {name: getattr(row, name) for name in columns}
        differing = sorted(name for name, value in columns.items() if stored[name] != value)
        if differing:
            self.problems.append(Problem(row.seq, f"column(s) {', '.join(differing)} disagree with the hashed record"))
        if self.chain_id is None:
            self.chain_id = row.chain_id
        elif row.chain_id != self.chain_id:
            self.problems.append(Problem(row.seq, f"belongs to chain {row.chain_id}, not {self.chain_id}"))
        if row.kind == RecordKind.ATTEMPT:
            self.open_attempts[row.record_id] = (row.seq, row.tenant_id)
        elif row.kind == RecordKind.OUTCOME and row.refers_to:
            self.open_attempts.pop(row.refers_to, None)

    @property
    def intact(self) -> bool:
        return not self.problems

    def outcome_unknown(self, tenant: str | None = None) -> list[int]:
        """Attempts (of `tenant`, or all) with no outcome: the process died mid-action, or it is still running."""
        return sorted(seq for seq, of in self.open_attempts.values() if tenant is None or of == tenant)
