"""The audit chain's pure core: canonical records, their hashes, and what verify finds in a tampered chain."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from amiflow_runtime.audit import (
    GENESIS_HASH,
    ChainVerifier,
    StoredRecord,
    attempt_record,
    canonical_json,
    chain_hash,
    columns_of,
    outcome_record,
    seal,
)

AT = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
CHAIN = "6f1c8a3e-2b4d-4e8f-9a7c-1d2e3f405162"


def attempt(subject: str = "op-7") -> dict[str, object]:
    return attempt_record(tenant="riverside", who={"subject": subject, "home_tenant": "riverside"},
                          where={"address": "10.0.0.7"}, what={"method": "POST", "route": "/v1/commands",
                                                              "path": "/v1/commands", "body": None},
                          why="tampering reported", objects=["EM-1001"])


def chain(count: int) -> list[StoredRecord]:
    """`count` records, attempts and outcomes in turn, sealed one after the other."""
    rows, prev_hash, last_attempt = [], GENESIS_HASH, ""
    for seq in range(1, count + 1):
        document = attempt() if seq % 2 else outcome_record(tenant="riverside", attempt_id=last_attempt,
                                                             status=201, ids={"command_id": [f"C-{seq}"]})
        sealed = seal(document, service="commands", chain_id=CHAIN, seq=seq, record_id=f"id-{seq}",
                      at=AT + timedelta(seconds=seq), prev_hash=prev_hash)
        rows.append(StoredRecord(**columns_of(sealed.document), record=sealed.record, prev_hash=prev_hash,
                                 hash=sealed.hash))
        prev_hash, last_attempt = sealed.hash, sealed.document["id"] if seq % 2 else last_attempt
    return rows


def verified(rows: list[StoredRecord]) -> ChainVerifier:
    verifier = ChainVerifier("commands")
    for row in rows:
        verifier.feed(row)
    return verifier


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_characters() -> None:
    assert canonical_json({"b": 1, "a": {"d": "水表", "c": [1, None]}}) == '{"a":{"c":[1,null],"d":"水表"},"b":1}'


def test_canonical_json_refuses_what_would_not_read_back_the_same() -> None:
    with pytest.raises(ValueError):
        canonical_json({"amount": float("nan")})


def test_each_hash_covers_the_previous_hash_and_the_record() -> None:
    assert chain_hash(GENESIS_HASH, "{}") != chain_hash("1" * 64, "{}")
    assert chain_hash(GENESIS_HASH, "{}") == chain_hash(GENESIS_HASH, "{}")
    assert len(chain_hash(GENESIS_HASH, "{}")) == 64


def test_a_sealed_record_carries_its_place_time_and_service() -> None:
    sealed = seal(attempt(), service="commands", chain_id=CHAIN, seq=7, record_id="id-7", at=AT,
                  prev_hash=GENESIS_HASH)
    document = json.loads(sealed.record)
    assert (document["seq"], document["id"], document["chain"], document["service"]) == (7, "id-7", CHAIN,
                                                                                           "commands")
    assert document["at"] == "2026-07-01T04:00:00.000000+00:00"
    assert sealed.hash == chain_hash(GENESIS_HASH, sealed.record)


def test_the_query_columns_come_from_the_record() -> None:
    sealed = seal(attempt("op-9"), service="commands", chain_id=CHAIN, seq=1, record_id="id-1", at=AT,
                  prev_hash=GENESIS_HASH)
    columns = columns_of(sealed.document)
    assert (columns["actor"], columns["action"], columns["objects"], columns["kind"]) == (
        "op-9", "POST /v1/commands", "|EM-1001|", "attempt")
    outcome = seal(outcome_record(tenant="riverside", attempt_id="id-1", status=201, ids={"command_id": ["C-1"]}),
                   service="commands", chain_id=CHAIN, seq=2, record_id="id-2", at=AT, prev_hash=sealed.hash)
    assert (columns_of(outcome.document)["refers_to"], columns_of(outcome.document)["objects"]) == ("id-1", "|C-1|")


def test_an_untouched_chain_is_intact() -> None:
    checked = verified(chain(6))
    assert checked.intact and checked.count == 6 and checked.head_seq == 6
    assert checked.chain_id == CHAIN and checked.outcome_unknown() == []


def test_an_altered_record_is_a_hash_mismatch_at_its_seq() -> None:
    rows = chain(5)
    document = json.loads(rows[2].record)
    rows[2] = dataclasses.replace(rows[2], record=canonical_json({**document, "why": "nothing to see"}))
    assert [(p.seq, p.what.split(":")[0]) for p in verified(rows).problems] == [(3, "hash mismatch")]


def test_a_deleted_record_is_a_gap_and_a_broken_link() -> None:
    rows = chain(5)
    del rows[2]
    problems = verified(rows).problems
    assert [(p.seq, p.what.split(":")[0]) for p in problems] == [(4, "gap in sequence numbers"), (4, "broken link")]
    assert "3 missing" in problems[0].what


def test_records_swapped_in_place_break_the_links() -> None:
    rows = chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    whats = {p.what.split(":")[0] for p in verified(rows).problems}
    assert {"broken link", "sequence number out of order after 3"} <= whats


def test_a_query_column_changed_behind_the_record_is_found() -> None:
    rows = chain(3)
    rows[0] = dataclasses.replace(rows[0], actor="somebody-else")
    [problem] = verified(rows).problems
    assert (problem.seq, problem.what) == (1, "column(s) actor disagree with the hashed record")


def test_a_rewritten_chain_with_recomputed_hashes_is_intact_on_its_own() -> None:
    # Why the chain is also published: a DBA who recomputes every hash after an edit fools verify alone.
    rows = chain(3)
    forged, prev_hash = [], GENESIS_HASH
    for row in rows:
        record = row.record.replace("tampering reported", "routine")
        forged.append(dataclasses.replace(row, record=record, prev_hash=prev_hash, hash=chain_hash(prev_hash, record)))
        prev_hash = forged[-1].hash
    assert verified(forged).intact and forged[-1].hash != rows[-1].hash


def test_an_attempt_without_outcome_is_reported_as_outcome_unknown() -> None:
    rows = chain(5)  # seq 5 is an attempt whose outcome never came
    assert verified(rows).outcome_unknown() == [5]
    assert verified(rows).outcome_unknown("another-tenant") == []
