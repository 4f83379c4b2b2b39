"""Fuzzing the JSON readings integrators post: every body parses or is refused, every item is decided.

POST /v1/readings parses the body (ValidationError: 422), turns each item into a ReadingReceived
(ReadingRefused, ValidationError or ValueError: that item is "rejected"), then decides the valid
ones as a batch and stages their events. Anything else raised on the way is a 500 for the whole
batch. The property walks that path without the database: only the errors the route answers.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from amiflow_schemas import encode_event
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from ingest.adapters.http import InvalidItem, ReadingBatch, ReadingItem, to_submission
from ingest.config import IngestSettings
from ingest.core.batches import decide_batch
from ingest.core.readings import ReadingRefused, received_event
from pydantic import TypeAdapter, ValidationError

EXAMPLES = int(os.environ.get("AMIFLOW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BODY = TypeAdapter(ReadingBatch | ReadingItem)  # the route's body parameter
SETTINGS = IngestSettings()
NOW = datetime(2026, 11, 21, 8, tzinfo=UTC)

GOOD = {"meter_id": "WM-0001", "utility": "water", "measured_at": "2026-11-21T08:00:00+08:00",
        "registers": [{"register": "total", "value": "123.456", "unit": "m3"}]}

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
# Instants at the edges of what datetime holds, in any offset: converting them to UTC may overflow.
_instants = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)) | st.sampled_from(
        [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), datetime(2026, 11, 21, 8)]),
    st.integers(-1439, 1439) | st.sampled_from([0, 480, -720, 840]))
_values = st.sampled_from(["0", "-0", "1E-99999", "1e5", "123.456", "-5", "NaN", "Infinity", "9" * 500, "0.1"]) | (
    st.decimals(allow_nan=False, allow_infinity=False).map(str)) | st.integers() | st.floats() | _json
_registers = st.lists(st.fixed_dictionaries({
    "register": st.sampled_from(["total", "T1", "reverse", "", "a" * 40, "总"]),
    "value": _values, "unit": st.sampled_from(["m3", "kWh", "GJ", "MWh", "kvarh", "L", ""])}), max_size=4)


@st.composite
def _items(draw: st.DrawFn) -> Any:
    """A reading item with some fields swapped for wrong, extreme or missing ones."""
    item: dict[str, Any] = dict(GOOD)
    fields = {
        "meter_id": st.sampled_from(["WM-1", "", " ", "x" * 200, "水表 1", "\x00"]) | st.text(max_size=30),
        "utility": st.sampled_from(["water", "electricity", "gas", "heat", "steam", 7]),
        "measured_at": _instants | st.sampled_from(["2026-11-21T08:00:00", "yesterday", 0]),
        "registers": _registers | _json, "pulse_count": st.integers() | st.sampled_from([2**70, -1]) | _json,
        "gateway_id": st.none() | st.text(max_size=10), "status": _json | st.fixed_dictionaries({
            "valve": st.sampled_from(["open", "closed", "ajar"]), "alarms": st.lists(st.text(max_size=12))}),
        "surprise": _json,
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            item.pop(name, None)
        else:
            item[name] = draw(fields[name])
    return item


_bodies = st.one_of(
    _items(), st.fixed_dictionaries({"readings": st.lists(_items(), max_size=6)}),
    st.fixed_dictionaries({"readings": _json}), _json,
)


def _through_the_route(raw: bytes) -> str:
    try:
        body = BODY.validate_json(raw)
    except ValidationError:
        return "body refused (422)"
    items = body.readings if isinstance(body, ReadingBatch) else [body]
    valid = []
    for index, item in enumerate(items):
        if isinstance(item, InvalidItem):
            assert item.reason
            continue
        try:
            valid.append(to_submission(index, item, SETTINGS, NOW, {}))
        except (ReadingRefused, ValidationError, ValueError) as exc:
            assert str(exc)
    verdicts = decide_batch({}, [(s.index, s.reading) for s in valid], [uuid.uuid4() for _ in valid])
    for submission, verdict in zip(valid, verdicts, strict=True):
        encode_event(received_event(submission.reading, tenant_id="t1", event_id=verdict.event_id, now=NOW))
    return "every item accepted" if len(valid) == len(items) else "some items rejected" if valid else "all rejected"


@FUZZ
@given(_bodies)
@example({**GOOD, "measured_at": "0001-01-01T00:00:00+08:00"})  # before 0001-01-01 in UTC
@example({**GOOD, "measured_at": "9999-12-31T23:59:59-08:00"})  # after 9999-12-31 in UTC
@example({**GOOD, "registers": [{"register": "total", "value": "1E-99999", "unit": "m3"}]})
def test_any_json_body_is_refused_or_each_item_decided_never_an_exception(body: Any) -> None:
    event(_through_the_route(json.dumps(body).encode()))


def test_a_reading_before_year_1_in_utc_is_refused_with_a_reason_not_a_crash() -> None:
    item = ReadingItem.model_validate({**GOOD, "measured_at": "0001-01-01T00:00:00+08:00"})

    with pytest.raises(ReadingRefused, match="outside the years 1-9999 in UTC"):
        to_submission(0, item, SETTINGS, NOW, {})


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_a_readings_body_are_refused_as_invalid(raw: bytes) -> None:
    assert _through_the_route(raw) == "body refused (422)"
