"""Every event type survives encode -> decode unchanged, and its JSON matches its schema."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from amiflow_schemas import (
    EVENT_TYPES,
    Envelope,
    EventPayload,
    decode_event,
    encode_event,
    envelope_headers,
    event_class,
    new_envelope,
)
from amiflow_schemas.contract import SCHEMAS_ROOT, schema_file_name
from amiflow_schemas.events import ReadingReceived, RegisterValue
from amiflow_schemas.examples import AT, example_envelope, example_payloads
from amiflow_schemas.primitives import ReadingSource, Unit, Utility
from jsonschema.validators import Draft202012Validator
from pydantic import ValidationError

EXAMPLES = example_payloads()


def _reading() -> ReadingReceived:
    return ReadingReceived(
        meter_id="M1",
        utility=Utility.WATER,
        measured_at=AT,
        registers=(RegisterValue(register="total", value=Decimal("1.5"), unit=Unit.M3),),
        source=ReadingSource.HTTP,
        gateway_id=None,
    )


def test_every_event_type_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_survives_encode_and_decode_unchanged(event_type: str) -> None:
    envelope = example_envelope(EXAMPLES[event_type])

    decoded = decode_event(encode_event(envelope))

    assert decoded == envelope
    assert type(decoded.payload) is event_class(event_type)
    assert encode_event(decoded) == encode_event(envelope)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_encoded_event_satisfies_its_committed_json_schema(event_type: str) -> None:
    cls = EVENT_TYPES[event_type]
    path = SCHEMAS_ROOT / schema_file_name(event_type, cls.EVENT_VERSION)
    schema = json.loads(path.read_text(encoding="utf-8"))
    document = json.loads(encode_event(example_envelope(EXAMPLES[event_type])))

    Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


def test_encoding_is_compact_utf8_json_with_payload_inline() -> None:
    raw = encode_event(example_envelope(_reading()))

    assert b": " not in raw and b", " not in raw
    document = json.loads(raw.decode("utf-8"))
    assert document["event_type"] == "ReadingReceived"
    assert document["payload"]["registers"] == [{"register": "total", "value": "1.5", "unit": "m3"}]


def test_headers_carry_type_version_tenant_and_event_id() -> None:
    envelope = example_envelope(EXAMPLES["DeviceStatusReported"], tenant_id="t-7")

    assert envelope_headers(envelope) == [
        ("event_type", b"DeviceStatusReported"),
        ("event_version", b"2"),
        ("tenant_id", b"t-7"),
        ("event_id", str(envelope.event_id).encode()),
    ]


def test_new_envelope_starts_a_chain_when_no_correlation_id_is_given() -> None:
    event_id = uuid4()
    envelope = new_envelope(_reading(), event_id=event_id, tenant_id="t", key="M1",
                            occurred_at=AT, recorded_at=AT, producer="ingest")

    assert envelope.correlation_id == event_id
    assert envelope.causation_id is None
    assert (envelope.event_type, envelope.event_version) == ("ReadingReceived", 1)


def test_new_envelope_keeps_the_given_correlation_and_causation() -> None:
    correlation, causation = uuid4(), uuid4()
    envelope = new_envelope(_reading(), event_id=uuid4(), tenant_id="t", key="M1",
                            occurred_at=AT, recorded_at=AT + timedelta(seconds=1),
                            producer="vee", correlation_id=correlation, causation_id=causation)

    assert (envelope.correlation_id, envelope.causation_id) == (correlation, causation)


def test_envelope_built_without_type_parameter_still_encodes_the_whole_payload() -> None:
    typed = example_envelope(_reading())
    untyped: Envelope[EventPayload] = Envelope(**dict(typed))

    assert encode_event(untyped) == encode_event(typed)


def test_envelope_refuses_a_type_or_version_its_payload_does_not_have() -> None:
    fields = dict(example_envelope(_reading()))

    with pytest.raises(ValidationError, match="payload is ReadingReceived"):
        Envelope(**{**fields, "event_type": "ReadingValidated"})
    with pytest.raises(ValidationError, match="payload is ReadingReceived"):
        Envelope(**{**fields, "event_version": 2})


def test_envelopes_and_payloads_are_frozen() -> None:
    reading = _reading()
    envelope = example_envelope(reading)

    with pytest.raises(ValidationError):
        envelope.key = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        reading.meter_id = "other"  # type: ignore[misc]


def test_every_payload_is_an_event_payload_with_its_own_name() -> None:
    for name, cls in EVENT_TYPES.items():
        assert issubclass(cls, EventPayload)
        assert cls.EVENT_TYPE == name
        assert "EVENT_TYPE" in vars(cls) and "EVENT_VERSION" in vars(cls)
