"""The codec's fast paths give exactly what the plain ones give, only sooner.

decode_event's one pass (a tagged union over every current envelope, validated straight from the
bytes) is a shortcut: whatever it refuses is decoded again by the checked path, which upcasts and
words the reason. So the two must never disagree on what is valid, nor on what it decodes to.
Likewise a decimal is written with str() unless that would show an exponent or a negative zero.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from amiflow_schemas import EventDecodeError, decode_event, encode_event, envelope
from amiflow_schemas.events.devices import FrameRejected
from amiflow_schemas.events.readings import RegisterValue
from amiflow_schemas.examples import example_envelope, example_payloads
from amiflow_schemas.primitives import Unit
from hypothesis import example, given
from hypothesis import strategies as st

EXAMPLES = example_payloads()
ORIGINALS = [encode_event(example_envelope(payload)) for payload in EXAMPLES.values()]


def _outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "decoded", decode(raw)
    except EventDecodeError as exc:
        return "refused", exc.reason


def _document(event_type: str = "ReadingReceived") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(encode_event(example_envelope(EXAMPLES[event_type])))
    return document


def test_every_current_event_decodes_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_second_pass(raw: bytes) -> None:
        raise AssertionError("took the checked path")

    monkeypatch.setattr(envelope, "_decode_checked", no_second_pass)

    for payload, raw in zip(EXAMPLES.values(), ORIGINALS, strict=True):
        decoded = decode_event(raw)
        assert decoded == example_envelope(payload) and type(decoded) is type(example_envelope(payload))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (json.dumps({**_document(), "event_version": "1"}).encode(), "event_version must be an integer, got str"),
        (json.dumps({**_document(), "event_version": True}).encode(), "event_version must be an integer, got bool"),
        (json.dumps({**_document(), "event_version": 1.0}).encode(), "event_version must be an integer, got float"),
        (json.dumps({**_document(), "signal_dbm": float("nan")}).encode(), "not JSON"),
        (json.dumps({**_document(), "signal_dbm": float("-inf")}).encode(), "not JSON"),
        (json.dumps({**_document(), "signal_dbm": [1, float("inf")]}).encode(), "not JSON"),
        (encode_event(example_envelope(EXAMPLES["ReadingReceived"])) + b" x", "not JSON"),
        (encode_event(example_envelope(EXAMPLES["ReadingReceived"]))[:-1] + b',"event_version":"1"}',
         "event_version must be an integer, got str"),
    ],
)
def test_what_the_checked_path_refuses_the_one_pass_refuses_too(raw: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)

    assert reason in caught.value.reason


def test_both_paths_agree_on_mangled_events() -> None:
    rng = random.Random(20261121)
    swaps: list[Any] = ["1", True, 1.0, 0.1, None, "", "NaN", [], {}, -1, 2**70, "ReadingValidated", "x" * 200]
    agreed = {"decoded": 0, "refused": 0}
    for _ in range(1500):
        raw = bytearray(rng.choice(ORIGINALS))
        if rng.random() < 0.5:  # a byte-level accident
            for _ in range(rng.randint(1, 3)):
                position = rng.randrange(len(raw))
                raw[position] = rng.choice(b'0123456789"{}[],:-.eEnNtfaINx\\')
        else:  # a producer's mistake: one field of the envelope or payload retyped
            document = json.loads(raw)
            target = document if rng.random() < 0.4 else document["payload"]
            target[rng.choice(sorted(target))] = rng.choice(swaps)
            raw = bytearray(json.dumps(document).encode())
        one_pass, checked = _outcome(decode_event, bytes(raw)), _outcome(envelope._decode_checked, bytes(raw))

        assert one_pass == checked, bytes(raw)
        agreed[one_pass[0]] += 1

    assert agreed["decoded"] > 50 and agreed["refused"] > 50


def test_an_event_whose_text_merely_mentions_nan_still_decodes() -> None:
    document = _document("FrameRejected")
    document["payload"]["detail"] = "NaN and Infinity in the frame's text, not as numbers"

    decoded = decode_event(json.dumps(document).encode())

    assert isinstance(decoded.payload, FrameRejected)
    assert decoded.payload.detail == document["payload"]["detail"]


@given(st.decimals(allow_nan=False, allow_infinity=False))
@example(Decimal("-0.00"))
@example(Decimal("1E+3"))
@example(Decimal("-1E-7"))
@example(Decimal("0.000001"))
def test_a_decimal_is_written_in_fixed_point_without_a_negative_zero(value: Decimal) -> None:
    text = json.loads(RegisterValue(register="total", value=value, unit=Unit.M3).model_dump_json())["value"]

    assert text == format(value.copy_abs() if value.is_zero() else value, "f")
