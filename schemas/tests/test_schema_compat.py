"""The compatibility checker flags breaking schema changes within a version, and only those."""

from __future__ import annotations

import json
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from amiflow_schemas import registry
from amiflow_schemas.compat import SchemaChange, check_committed, compare_schemas, main
from amiflow_schemas.contract import SCHEMA_DIR, SCHEMAS_ROOT, envelope_json_schema
from amiflow_schemas.payload import EventPayload
from pydantic import AwareDatetime, StringConstraints


class Colour(StrEnum):
    """Colours before."""

    RED = "red"
    GREEN = "green"


class FewerColours(StrEnum):
    """A colour was removed."""

    RED = "red"


class MoreColours(StrEnum):
    """A colour was added."""

    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Sample(EventPayload):
    """The committed version of a synthetic event."""

    EVENT_TYPE: ClassVar[str] = "Sample"
    EVENT_VERSION: ClassVar[int] = 1

    meter_id: Annotated[str, StringConstraints(max_length=64)]
    colour: Colour
    note: str | None
    seen_at: AwareDatetime


class AddedOptional(Sample):
    """Adds a field with a default: old events still validate."""

    comment: str | None = None


class AddedRequired(Sample):
    """Adds a field old events do not have."""

    comment: str


class RemovedField(EventPayload):
    """Drops seen_at."""

    EVENT_TYPE: ClassVar[str] = "Sample"
    EVENT_VERSION: ClassVar[int] = 1

    meter_id: Annotated[str, StringConstraints(max_length=64)]
    colour: Colour
    note: str | None


def _variant(**annotations: Any) -> type[EventPayload]:
    fields = {**Sample.__annotations__, **annotations}
    fields = {name: kind for name, kind in fields.items() if name not in ("EVENT_TYPE", "EVENT_VERSION")}
    return type("SampleVariant", (EventPayload,), {
        "__annotations__": {**fields, "EVENT_TYPE": ClassVar[str], "EVENT_VERSION": ClassVar[int]},
        "EVENT_TYPE": "Sample", "EVENT_VERSION": 1, "__module__": __name__,
    })


def _changes(new: type[EventPayload]) -> list[SchemaChange]:
    return compare_schemas(envelope_json_schema(Sample), envelope_json_schema(new))


def _breaking(new: type[EventPayload]) -> list[str]:
    return [f"{c.path}: {c.message}" for c in _changes(new) if c.breaking]


def test_an_unchanged_model_has_no_changes() -> None:
    assert _changes(Sample) == []


def test_adding_an_optional_field_is_allowed() -> None:
    assert _breaking(AddedOptional) == []
    assert [c.message for c in _changes(AddedOptional)] == ["new optional field"]


def test_adding_a_required_field_is_breaking() -> None:
    assert _breaking(AddedRequired) == ["$.payload.comment: new required field"]


def test_removing_a_field_is_breaking() -> None:
    assert _breaking(RemovedField) == ["$.payload.seen_at: removed field"]


def test_changing_a_field_type_is_breaking() -> None:
    assert _breaking(_variant(meter_id=int)) == [
        "$.payload.meter_id: changed type: ['string'] -> ['integer']"
    ]


def test_dropping_null_from_an_optional_field_is_a_narrowing() -> None:
    assert _breaking(_variant(note=str)) == [
        "$.payload.note: narrowed type: ['null', 'string'] -> ['string']"
    ]


def test_removing_an_enum_value_is_breaking_and_adding_one_is_not() -> None:
    assert _breaking(_variant(colour=FewerColours)) == ["$.payload.colour: removed enum values ['green']"]
    assert _breaking(_variant(colour=MoreColours)) == []


def test_tightening_a_length_limit_is_breaking() -> None:
    shorter = Annotated[str, StringConstraints(max_length=32)]

    assert _breaking(_variant(meter_id=shorter)) == ["$.payload.meter_id: maxLength lowered to 32"]


def test_the_committed_schemas_are_compatible_with_the_current_models() -> None:
    breaking = [str(c) for c in check_committed(SCHEMAS_ROOT / SCHEMA_DIR) if c.breaking]

    assert breaking == []


def _committed_copy(tmp_path: Path) -> Path:
    target = tmp_path / SCHEMA_DIR
    shutil.copytree(SCHEMAS_ROOT / SCHEMA_DIR, target)
    return target


def test_a_field_missing_from_the_model_but_in_the_committed_file_fails_the_check(tmp_path: Path) -> None:
    directory = _committed_copy(tmp_path)
    path = directory / "ReadingReceived.v1.json"
    schema = json.loads(path.read_text())
    schema["$defs"]["ReadingReceived"]["properties"]["firmware"] = {"type": "string"}
    path.write_text(json.dumps(schema))

    assert main(["--dir", str(directory)]) == 1
    assert any(c.path == "ReadingReceived.v1.json.payload.firmware" and c.breaking
               for c in check_committed(directory))


def test_an_old_version_without_an_upcaster_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _committed_copy(tmp_path)
    monkeypatch.delitem(registry.UPCASTERS, ("DeviceStatusReported", 1))

    messages = [c.message for c in check_committed(directory) if c.breaking]

    assert messages == ["old events cannot be decoded: no upcaster from DeviceStatusReported v1 to v2"]


def test_a_deleted_event_type_fails_the_check(tmp_path: Path) -> None:
    directory = _committed_copy(tmp_path)
    (directory / "MeterExploded.v1.json").write_text("{}")

    assert [c.message for c in check_committed(directory) if c.breaking] == [
        "event type was removed; old events no longer decode"
    ]
