"""decode_event turns any bad input into an EventDecodeError that says what is wrong."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from amiflow_schemas import EventDecodeError, decode_event, encode_event
from amiflow_schemas.examples import example_envelope, example_payloads

EXAMPLES = example_payloads()


def _reading_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(encode_event(example_envelope(EXAMPLES["ReadingReceived"])))
    return document


def _with(**changes: Any) -> bytes:
    return json.dumps({**_reading_document(), **changes}).encode()


def _with_payload(**changes: Any) -> bytes:
    document = _reading_document()
    return json.dumps({**document, "payload": {**document["payload"], **changes}}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b'{"event_type": "ReadingReceived",', "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"ReadingReceived"', "expected a JSON object, got str"),
        (b"{}", "event_type must be a string, got nothing"),
        (b'{"event_type": 7, "event_version": 1}', "event_type must be a string"),
        (b'{"event_type": "ReadingReceived", "event_version": "1"}', "event_version must be an integer"),
        (b'{"event_type": "ReadingReceived", "event_version": true}', "event_version must be an integer"),
        (b'{"event_type": "MeterExploded", "event_version": 1}', "unknown event type 'MeterExploded'"),
        (b'{"event_type": "ReadingReceived", "event_version": 2}', "ReadingReceived v2 is not known here"),
        (b'{"event_type": "ReadingReceived", "event_version": 0}', "ReadingReceived v0 is not known here"),
        (b'{"event_type": "ReadingReceived", "event_version": 1}', "invalid ReadingReceived v1"),
        (b'{"a": NaN}', "not JSON"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_bad_input_is_a_decode_error_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    assert reason in caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_a_validation_failure_names_the_fields_and_counts_the_rest() -> None:
    raw = _with_payload(meter_id="", utility="steam", measured_at="2026-07-01T12:00:00",
                        source="fax", gateway_id=" ")

    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    reason = caught.value.reason
    assert reason.startswith("invalid ReadingReceived v1: 5 error(s): payload.meter_id:")
    assert "payload.utility" in reason and "(+2 more)" in reason


def test_a_reason_stays_short_whatever_the_input() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(_with(event_type="X" * 50_000))

    assert len(caught.value.reason) <= 1000


def test_a_float_amount_is_refused_when_decoding() -> None:
    document = json.loads(encode_event(example_envelope(EXAMPLES["PaymentReceived"])))
    document["payload"]["amount"] = 0.1

    with pytest.raises(EventDecodeError, match=r"payload\.amount"):
        decode_event(json.dumps(document).encode())


def test_an_envelope_naming_another_payload_type_is_refused() -> None:
    with pytest.raises(EventDecodeError, match="invalid ReadingValidated v1"):
        decode_event(_with(event_type="ReadingValidated"))


def test_unknown_fields_from_a_newer_producer_are_ignored() -> None:
    envelope = decode_event(_with_payload(signal_strength_dbm=-71))

    assert envelope == example_envelope(EXAMPLES["ReadingReceived"])


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(EventDecodeError, ValueError)


def test_mangled_bytes_only_ever_raise_decode_errors() -> None:
    rng = random.Random(20260701)
    originals = [encode_event(example_envelope(payload)) for payload in EXAMPLES.values()]
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(3000):
        raw = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(raw))
            if rng.random() < 0.5:
                raw[position] = rng.randrange(256)
            else:
                del raw[position : position + rng.randint(1, 20)]
        try:
            decode_event(bytes(raw))
            outcomes["decoded"] += 1
        except EventDecodeError:
            outcomes["refused"] += 1

    assert outcomes["refused"] > 0
