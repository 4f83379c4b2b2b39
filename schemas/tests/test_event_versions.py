"""Old versions decode into the current model through upcasters; the registry is complete."""

from __future__ import annotations

import json
from typing import Any

import pytest
from amiflow_schemas import EVENT_TYPES, EventDecodeError, decode_event, event_class
from amiflow_schemas.contract import SCHEMAS_ROOT, schema_file_name
from amiflow_schemas.events import DeviceStatusReported
from amiflow_schemas.events.devices import BatteryLevel, upcast_device_status_reported_v1_v2
from amiflow_schemas.payload import EventPayload, is_event_class
from amiflow_schemas.primitives import ValveState
from amiflow_schemas.registry import LEGACY_VERSIONS, upcasters_from
from jsonschema.validators import Draft202012Validator

# A DeviceStatusReported v1 record as ingest wrote it before v2 existed.
V1_RECORD: dict[str, Any] = {
    "event_id": "0b6f4b1e-5d7e-4a51-9d0c-2f1c3a4b5c6d",
    "event_type": "DeviceStatusReported",
    "event_version": 1,
    "tenant_id": "tenant-demo",
    "key": "WM-000012345678",
    "occurred_at": "2025-11-02T06:15:00+08:00",
    "recorded_at": "2025-11-02T06:15:01+08:00",
    "producer": "ingest",
    "correlation_id": "0b6f4b1e-5d7e-4a51-9d0c-2f1c3a4b5c6d",
    "causation_id": None,
    "payload": {
        "meter_id": "WM-000012345678",
        "utility": "water",
        "reported_at": "2025-11-02T06:15:00+08:00",
        "valve_state": "closed",
        "battery_low": True,
        "status_word_hex": "0500",
        "gateway_id": "DTU-861234567890123",
    },
}


def _v1(**payload_changes: Any) -> bytes:
    return json.dumps({**V1_RECORD, "payload": {**V1_RECORD["payload"], **payload_changes}}).encode()


def test_the_v1_sample_is_what_the_committed_v1_schema_describes() -> None:
    schema = json.loads((SCHEMAS_ROOT / schema_file_name("DeviceStatusReported", 1)).read_text())

    Draft202012Validator(schema).validate(V1_RECORD)


def test_a_v1_device_status_decodes_as_the_current_v2_model() -> None:
    envelope = decode_event(_v1())

    assert envelope.event_version == 2
    payload = envelope.payload
    assert isinstance(payload, DeviceStatusReported)
    assert payload.valve is ValveState.CLOSED
    assert payload.battery is not None and payload.battery.level is BatteryLevel.LOW
    assert payload.battery.voltage_v is None
    assert payload.relay is None and payload.alarms == ()
    assert payload.status_word_hex == "0500"
    assert str(envelope.event_id) == V1_RECORD["event_id"]


def test_battery_not_low_in_v1_becomes_level_ok() -> None:
    upcast = upcast_device_status_reported_v1_v2({**V1_RECORD["payload"], "battery_low": False})

    assert upcast["battery"] == {"level": "ok", "voltage_v": None, "remaining_percent": None}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"battery_low": None}, "battery_low must be true or false"),
        ({"battery_low": "yes"}, "battery_low must be true or false"),
        ({"valve_state": "ajar"}, "invalid DeviceStatusReported v2"),
    ],
)
def test_a_broken_v1_payload_is_a_decode_error(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(_v1(**payload))


def test_a_v1_payload_missing_a_field_is_a_decode_error() -> None:
    document = json.loads(_v1())
    del document["payload"]["battery_low"]

    with pytest.raises(EventDecodeError, match="cannot upcast DeviceStatusReported v1 to v2"):
        decode_event(json.dumps(document).encode())


def test_a_v1_record_without_an_object_payload_is_a_decode_error() -> None:
    with pytest.raises(EventDecodeError, match="payload must be a JSON object"):
        decode_event(json.dumps({**V1_RECORD, "payload": [1]}).encode())


@pytest.mark.parametrize("key", sorted(LEGACY_VERSIONS))
def test_every_superseded_version_has_a_complete_upcaster_chain(key: tuple[str, int]) -> None:
    event_type, version = key
    current = EVENT_TYPES[event_type].EVENT_VERSION

    assert version < current
    assert len(upcasters_from(event_type, version)) == current - version


def test_event_class_finds_the_current_version_and_names_an_unknown_type() -> None:
    assert event_class("DeviceStatusReported") is DeviceStatusReported
    with pytest.raises(KeyError, match="unknown event type 'Nope'"):
        event_class("Nope")


def _subclasses(cls: type[EventPayload]) -> list[type[EventPayload]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


def test_every_concrete_payload_class_is_registered_as_current_or_legacy() -> None:
    registered = {*EVENT_TYPES.values(), *LEGACY_VERSIONS.values()}
    concrete = {cls for cls in _subclasses(EventPayload) if is_event_class(cls)}
    # Tests elsewhere define throw-away payload classes; only the package's own count here.
    ours = {cls for cls in concrete if cls.__module__.startswith("amiflow_schemas.")}

    assert ours == registered
