"""Fuzzing event decoding and the consumer's decode-and-route step: garbage is dead-lettered, the rest goes on.

decode_event must answer anything — random bytes, random JSON, real envelopes with a payload field
mangled, unknown types and versions, old versions whose upcaster meets junk — with a decoded event
or an EventDecodeError, never another exception (which the pipeline would not catch). What decodes
must encode back to the same event. Then, at the consumer: a batch of such records goes through
InboxConsumer's per-partition step; each undecodable one is dead-lettered once with its raw bytes
and the reason, each good one is handled once, and the batch's offset is committed after it.
AMIFLOW_FUZZ_EXAMPLES raises the number of cases per test for a long hunt.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from amiflow_runtime.clock import FrozenClock
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.consumer import InboxConsumer
from amiflow_runtime.db import inbox_table, make_engine, outbox_table, sessions
from amiflow_runtime.deadletter import MAX_REASON_BYTES, ConsumedRecord, DeadLetters
from amiflow_runtime.pipeline import EventPipeline
from amiflow_schemas import EVENT_TYPES, Envelope, EventDecodeError, decode_event, encode_event
from amiflow_schemas.examples import example_envelope, example_payloads
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import StaticPool

EXAMPLES = int(os.environ.get("AMIFLOW_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NOW = datetime(2026, 11, 21, 8, tzinfo=UTC)
TOPIC = "amiflow.readings.received"

ORIGINALS = [json.loads(encode_event(example_envelope(p))) for p in example_payloads().values()]
# DeviceStatusReported v1 as ingest wrote it before v2: decoding runs it through the upcaster.
V1_STATUS: dict[str, Any] = {
    "event_id": "0b6f4b1e-5d7e-4a51-9d0c-2f1c3a4b5c6d", "event_type": "DeviceStatusReported", "event_version": 1,
    "tenant_id": "tenant-demo", "key": "WM-000012345678", "occurred_at": "2025-11-02T06:15:00+08:00",
    "recorded_at": "2025-11-02T06:15:01+08:00", "producer": "ingest",
    "correlation_id": "0b6f4b1e-5d7e-4a51-9d0c-2f1c3a4b5c6d", "causation_id": None,
    "payload": {"meter_id": "WM-000012345678", "utility": "water", "reported_at": "2025-11-02T06:15:00+08:00",
                "valve_state": "closed", "battery_low": True, "status_word_hex": "0500",
                "gateway_id": "DTU-861234567890123"},
}
DOCUMENTS = [*ORIGINALS, V1_STATUS]

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**80), 2**80) | st.floats()
            | st.text(max_size=30) | st.sampled_from(["", "NaN", "1E+999999", "1e-999999", "2026-13-45T25:61:00Z",
                                                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                                     "-0", "0.000", "\x00", "\ud7ff", "A" * 300]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=16)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value sits: (key or index, ...)."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    head, rest = path[0], path[1:]
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace(copy[head], rest, value, delete)
    return copy


@st.composite
def mangled_envelopes(draw: st.DrawFn) -> bytes:
    """A real envelope (any type, or an old version) with 1-3 fields replaced, deleted or retyped."""
    document = draw(st.sampled_from(DOCUMENTS))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)[1:]))
        value = draw(st.one_of(
            _json, st.sampled_from([*EVENT_TYPES, "MeterExploded", ""]), st.integers(-3, 5),
            st.just(document.get("payload")),  # the payload again, one level deeper
        ))
        document = _replace(document, path, value, delete=draw(st.integers(0, 4)) == 0)
    return json.dumps(document).encode()


def decodes_or_refuses(raw: bytes) -> Envelope[Any] | None:
    """decode_event's whole contract: an envelope that round-trips, or an EventDecodeError with a short reason."""
    try:
        envelope = decode_event(raw)
    except EventDecodeError as exc:
        assert exc.reason and str(exc) == exc.reason and len(exc.reason) <= 1000
        event(f"refused: {exc.reason.split(':')[0].split(' ' + chr(39))[0][:40]}")
        return None
    event(f"decoded: {envelope.event_type}")
    assert decode_event(encode_event(envelope)) == envelope, "what decodes must encode back to the same event"
    return envelope


@FUZZ
@given(st.binary(max_size=500))
@example(b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
@example(b'{"event_type": "ReadingReceived", "event_version": 1e400}')
def test_random_bytes_decode_to_an_event_decode_error(raw: bytes) -> None:
    decodes_or_refuses(raw)


@FUZZ
@given(_json)
def test_random_json_decodes_to_an_event_decode_error(document: Any) -> None:
    decodes_or_refuses(json.dumps(document).encode())


@FUZZ
@given(mangled_envelopes())
@example(json.dumps({**V1_STATUS, "payload": {**V1_STATUS["payload"], "valve_state": {"a": 1}}}).encode())
@example(json.dumps({**ORIGINALS[0], "event_version": 2**70}).encode())
def test_real_envelopes_with_mangled_fields_decode_or_raise_only_event_decode_error(raw: bytes) -> None:
    decodes_or_refuses(raw)


@FUZZ
@given(st.sampled_from(DOCUMENTS), st.text(min_size=1, max_size=60) | st.sampled_from([*EVENT_TYPES]),
       st.integers(-5, 2**40) | st.sampled_from([True, "1", 1.0, None]))
def test_any_event_type_and_version_decode_or_raise_only_event_decode_error(
    document: dict[str, Any], event_type: str, version: Any
) -> None:
    decodes_or_refuses(json.dumps({**document, "event_type": event_type, "event_version": version}).encode())


# ---- the consumer's decode-and-route step --------------------------------------------------------

@dataclass
class RecordingDeadLetters(DeadLetters):
    """The real DeadLetters' contract without a broker: what would be published, in order."""

    published: list[tuple[ConsumedRecord, str, str]] = field(default_factory=list)

    async def publish(self, record: ConsumedRecord, reason: str, kind: str, now: datetime) -> None:
        self.published.append((record, reason, kind))


class RecordingConsumer:
    """Stands in for AIOKafkaConsumer in the two calls _apply_partition makes on it."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)

    def highwater(self, partition: TopicPartition) -> int | None:
        return None  # nothing fetched: the lag gauge is left alone


def _fresh(document: dict[str, Any]) -> bytes:
    return json.dumps({**document, "event_id": str(uuid.uuid4())}).encode()


_records = st.lists(st.one_of(
    st.binary(max_size=200), _json.map(lambda d: json.dumps(d).encode()), mangled_envelopes(),
    st.sampled_from(DOCUMENTS).map(_fresh), st.just(b""),
), min_size=1, max_size=8)


async def _route(values: Sequence[bytes]) -> tuple[RecordingDeadLetters, list[str], RecordingConsumer]:
    metadata = MetaData()
    inbox, outbox = inbox_table(metadata), outbox_table(metadata)
    engine = make_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    handled: list[str] = []

    async def handler(_session: AsyncSession, envelope: Envelope[Any]) -> list[Envelope[Any]]:
        handled.append(str(envelope.event_id))
        return []

    dead = RecordingDeadLetters(producer=None, topic="amiflow.dlq.test", consumer="fuzz")  # type: ignore[arg-type]
    pipeline = EventPipeline(consumer="fuzz", sessions=sessions(engine), inbox=inbox, outbox=outbox,
                             handler=handler, dead_letters=dead, clock=FrozenClock(NOW))
    consumer = InboxConsumer(ServiceSettings(), [TOPIC], pipeline)
    kafka = RecordingConsumer()
    consumer._consumer = kafka  # type: ignore[assignment]
    messages = [ConsumerRecord(TOPIC, 0, 100 + i, 0, 0, b"k", value, None, 1, len(value), [])
                for i, value in enumerate(values)]
    try:
        await consumer._apply_partition(TopicPartition(TOPIC, 0), messages)
    finally:
        await engine.dispose()
    return dead, handled, kafka


@settings(FUZZ, max_examples=max(EXAMPLES // 4, 50))
@given(_records)
def test_a_batch_of_garbage_and_events_dead_letters_each_bad_record_and_applies_the_rest(values: list[bytes]) -> None:
    dead, handled, kafka = asyncio.run(_route(values))

    expected_dead, expected_ids = [], []
    for value in values:
        try:
            expected_ids.append(str(decode_event(value).event_id))
        except EventDecodeError:
            expected_dead.append(value)
    assert [record.value for record, _, _ in dead.published] == expected_dead, "raw bytes kept, in order"
    assert all(kind == "undecodable" and reason for _, reason, kind in dead.published)
    assert handled == list(dict.fromkeys(expected_ids)), "every good event applied once, in order"
    assert kafka.commits == [{TopicPartition(TOPIC, 0): 100 + len(values)}], "committed past the whole batch"
    event(f"dead letters: {bool(dead.published)}, applied events: {bool(handled)}")


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})


@FUZZ
@given(st.text(max_size=3000) | st.sampled_from(["水" * 1500, "é" * 2500, "😀" * 1001]), st.binary(max_size=64))
@example("handler failed 3 times: ValueError: bad meter id '\ud800'", b"{}")  # a lone surrogate from JSON
def test_a_dead_letter_keeps_the_raw_bytes_and_a_reason_header_that_is_valid_utf8(reason: str, raw: bytes) -> None:
    producer = RecordingProducer()
    letters = DeadLetters(producer, "amiflow.dlq.test", "fuzz")  # type: ignore[arg-type]
    record = ConsumedRecord(TOPIC, 3, 42, b"key", raw, [("event_type", b"X"), ("dlq.reason", b"old")])

    asyncio.run(letters.publish(record, reason, "handler-error", NOW))

    (sent,) = producer.sent
    headers = dict(sent["headers"])
    assert sent["value"] == raw and sent["key"] == b"key"
    assert len(headers["dlq.reason"]) <= MAX_REASON_BYTES
    # Never cut inside a character, so tools read it as UTF-8; a lone surrogate is escaped, not fatal.
    assert reason.encode("utf-8", "backslashreplace").decode().startswith(headers["dlq.reason"].decode("utf-8"))
    assert [k for k, _ in sent["headers"]].count("dlq.reason") == 1


def test_an_undecodable_record_never_reaches_the_handler_or_the_database() -> None:
    dead, handled, kafka = asyncio.run(_route([b"\x00garbage", _fresh(ORIGINALS[0])]))

    assert [(r.value, kind) for r, _, kind in dead.published] == [(b"\x00garbage", "undecodable")]
    assert "not JSON" in dead.published[0][1]
    assert len(handled) == 1 and kafka.commits == [{TopicPartition(TOPIC, 0): 102}]


pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
