"""Smoke test of the decode benchmark: a quick run gives a figure for every hot-path event, never a verdict on speed."""

from __future__ import annotations

import json

import pytest
from amiflow_bench.decode import GOAL_US, hot_path_events, measure
from amiflow_schemas import decode_event, encode_event

# Marked like the other benchmarks' smoke tests, which `make test-unit` leaves out; this one needs
# no broker or database (decoding is pure CPU work), so it runs without an environment.
pytestmark = pytest.mark.integration


def test_the_hot_path_events_are_the_ones_the_pipeline_carries_and_survive_a_round_trip() -> None:
    events = hot_path_events()

    assert {e.event_type for e in events.values()} == {
        "ReadingReceived", "ReadingValidated", "ChargeApplied", "BalanceDepleted", "RelayCommandIssued",
        "ValveCommandIssued"}
    assert {len(e.payload.registers) for e in events.values() if e.event_type == "ReadingReceived"} == {1, 3}
    for envelope in events.values():
        assert decode_event(encode_event(envelope)) == envelope


def test_a_quick_run_times_decode_encode_and_the_json_floor_of_every_event() -> None:
    result = measure(None, "quick")

    assert json.loads(json.dumps(result)) == result, "plain JSON-able figures"
    assert result["scale"] == "quick" and result["goal_us"] == GOAL_US
    assert set(result["events"]) == set(hot_path_events())
    for row in result["events"].values():
        assert row["bytes"] > 200
        assert row["decode_us"] > 0 and row["encode_us"] > 0
        assert row["decode_cpu_us"] > 0 and row["encode_cpu_us"] > 0
        assert row["floor_us"]["json.loads"] > 0 and row["floor_us"]["pydantic_core.from_json"] > 0
        assert row["decode_goal_met"] == (row["decode_us"] <= GOAL_US)
    decodes = [row["decode_us"] for row in result["events"].values()]
    assert result["decode_us_worst"] == max(decodes)
    assert result["goal_met"] == (max(decodes) <= GOAL_US)
    assert result["goal_met_on_cpu_time"] == (result["decode_cpu_us_worst"] <= GOAL_US)
    steps = [step.split(" ", 1) for step in result["reading_to_charge_codec_steps"]]
    assert [direction for direction, _ in steps] == ["encode", "decode", "encode", "decode", "encode"]
    assert result["reading_to_charge_codec_us"] == pytest.approx(
        sum(result["events"][name][f"{direction}_us"] for direction, name in steps), abs=0.01)
    assert result["reading_to_charge_codec_cpu_us"] == pytest.approx(
        sum(result["events"][name][f"{direction}_cpu_us"] for direction, name in steps), abs=0.01)
    assert result["load_average_1m"]["before"] >= 0 and result["cpu_count"] >= 1
    assert result["orjson_installed"] == ("orjson.loads" in next(iter(result["events"].values()))["floor_us"])
    assert result["profile"] and all("calls/decode" in line for line in result["profile"])
