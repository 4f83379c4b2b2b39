"""`python -m <service>.main audit verify [--against-kafka]`: recompute one service's audit chain.

`amiflow audit verify` runs this for every service, the way `amiflow migrate` runs their migrations, so
each finds its database exactly as the service does. Exit 0 with counts when the chain is intact; 1 with
the service, the sequence number and what is wrong otherwise.

The chain alone shows any edited, deleted or reordered record — except the newest ones cut off its end,
or a chain rewritten from some record on with every hash recomputed. --against-kafka also compares the
chain with the copy published on amiflow.audit: a record published but missing from the database, or
published with another hash, is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from amiflow_schemas import decode_event
from amiflow_schemas.topics import topic_for_event
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from amiflow_runtime.audit import ChainVerifier, Problem, StoredRecord
from amiflow_runtime.audit_db import audit_records, verify_chain
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.db import make_engine, sessions
from amiflow_runtime.kafka import client_options

AUDIT_TOPIC = topic_for_event("AuditRecorded").name


@dataclass
class Anchor:
    """The published copy of one chain: seq -> hash, and what comparing the database with it found."""

    hashes: dict[int, str]
    problems: list[Problem] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def check(self, row: StoredRecord) -> None:
        """Compare one stored record with its published copy."""
        self.seen.add(row.seq)
        published = self.hashes.get(row.seq)
        if published is not None and published != row.hash:
            self.problems.append(Problem(row.seq, "differs from the copy published on amiflow.audit "
                                                  "(the chain was rewritten from here on, or this record was)"))

    def finish(self) -> list[Problem]:
        """Published records the database no longer holds, after every row was checked."""
        missing = sorted(set(self.hashes) - self.seen)
        return [*self.problems, *(Problem(seq, "published on amiflow.audit but missing from the database")
                                  for seq in missing)]

    def unpublished(self) -> int:
        """Stored records not (yet) on the topic: the outbox may still hold them."""
        return len(self.seen - set(self.hashes))


async def published_hashes(settings: ServiceSettings, service: str, chain_id: str) -> dict[int, str]:
    """seq -> hash of every AuditRecorded of this chain on amiflow.audit, read from the start to the end."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        partitions = [TopicPartition(AUDIT_TOPIC, p) for p in sorted(consumer.partitions_for_topic(AUDIT_TOPIC)
                                                                        or await _partitions(consumer))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        hashes: dict[int, str] = {}
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batch = await consumer.getmany(*partitions, timeout_ms=1000)
            for records in batch.values():
                for message in records:
                    event = decode_event(message.value)
                    payload: Any = event.payload
                    if payload.service == service and str(payload.chain_id) == chain_id:
                        hashes[payload.seq] = payload.record_hash
        return hashes
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer) -> set[int]:
    await consumer.topics()  # loads the metadata of every topic
    return consumer.partitions_for_topic(AUDIT_TOPIC) or {0}


async def verify_service(settings: ServiceSettings, *, against_kafka: bool) -> tuple[ChainVerifier, list[Problem],
                                                                                     int | None]:
    """The chain of this service's database recomputed; problems with its published copy; unpublished count."""
    engine = make_engine(settings.resolved_database_url)
    try:
        made = sessions(engine)
        anchor: Anchor | None = None
        if against_kafka:
            async with made() as session:
                chain_id = (await session.execute(select(audit_records.c.chain_id).limit(1))).scalar()
            anchor = Anchor(await published_hashes(settings, settings.service_name, chain_id) if chain_id else {})
        checked = await verify_chain(made, settings.service_name, check=anchor.check if anchor else None)
        return checked, (anchor.finish() if anchor else []), (anchor.unpublished() if anchor else None)
    finally:
        await engine.dispose()


def report(service: str, checked: ChainVerifier, anchored: Sequence[Problem], unpublished: int | None) -> list[str]:
    """The lines `audit verify` prints for one service."""
    problems = [*checked.problems, *anchored]
    if not problems:
        lines = [f"{service}: intact: {checked.count} records, head seq {checked.head_seq} "
                 f"hash {checked.head_hash[:16]}…"]
    else:
        lines = [f"{service}: BROKEN: {len(problems)} problem(s) in {checked.count} records"]
        lines += [f"{service}: seq {p.seq}: {p.what}" for p in sorted(problems, key=lambda p: p.seq)[:200]]
    if unpublished is not None:
        lines.append(f"{service}: compared with amiflow.audit; {unpublished} record(s) not published yet")
    unknown = checked.outcome_unknown()
    if unknown:
        shown = ", ".join(str(seq) for seq in unknown[:20])
        lines.append(f"{service}: {len(unknown)} action(s) with outcome unknown (seq {shown})")
    return lines


def audit_command(argv: Sequence[str], settings: Callable[[], ServiceSettings]) -> int:
    """The `audit` role of a service's main: `audit verify [--against-kafka]`."""
    parser = argparse.ArgumentParser(prog="audit", description="Check this service's audit trail")
    sub = parser.add_subparsers(dest="action", required=True)
    verify = sub.add_parser("verify", help="recompute the hash chain; exit 1 naming what is wrong")
    verify.add_argument("--against-kafka", action="store_true",
                        help="also compare with the copy published on amiflow.audit")
    args = parser.parse_args(list(argv))
    config = settings()
    try:
        checked, anchored, unpublished = asyncio.run(verify_service(config, against_kafka=args.against_kafka))
    except DBAPIError as exc:  # no table (not migrated), no database: one line, not a traceback
        print(f"{config.service_name}: the audit trail cannot be read: {exc.orig}")  # noqa: T201
        return 1
    for line in report(config.service_name, checked, anchored, unpublished):
        print(line)  # noqa: T201 - a command's report
    return 0 if checked.intact and not anchored else 1
