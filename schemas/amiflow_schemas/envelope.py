"""The envelope every event travels in, and the one way to encode and decode it."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Generic, Self, TypeVar, cast
from uuid import UUID

import pydantic_core
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import EventTypeName, Identifier, ServiceName
from amiflow_schemas.registry import EVENT_TYPES, upcasters_from

P = TypeVar("P", bound=EventPayload)

HEADER_EVENT_TYPE = "event_type"
HEADER_EVENT_VERSION = "event_version"
HEADER_TENANT_ID = "tenant_id"
HEADER_EVENT_ID = "event_id"

_MAX_REASON_CHARS = 1000
_ERRORS_IN_REASON = 3


class Envelope(BaseModel, Generic[P]):
    """One event: who, when, why, and the typed payload; ``Envelope[ReadingReceived]`` etc."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(description="Unique per event; consumers deduplicate on it.")
    event_type: EventTypeName
    # Strict: a JSON integer, never "1" or true; decode_event's one-pass validation relies on it to
    # refuse exactly what its checked path refuses.
    event_version: Annotated[int, Field(strict=True, gt=0)]
    tenant_id: Identifier
    key: Identifier = Field(description="The Kafka key: meter, account or device id (topics.py).")
    occurred_at: AwareDatetime = Field(description="Event time: when it happened in the world.")
    recorded_at: AwareDatetime = Field(description="When the producer recorded it.")
    producer: ServiceName = Field(description="The service that produced the event.")
    correlation_id: UUID = Field(description="The event that started the chain.")
    causation_id: UUID | None = Field(description="The event this one was decided from.")
    # SerializeAsAny: an Envelope built without a type parameter still writes every payload field.
    payload: SerializeAsAny[P]

    @model_validator(mode="after")
    def _names_its_payload(self) -> Self:
        cls = type(self.payload)
        declared = (getattr(cls, "EVENT_TYPE", None), getattr(cls, "EVENT_VERSION", None))
        if declared != (self.event_type, self.event_version):
            raise ValueError(
                f"envelope says {self.event_type} v{self.event_version} but the payload is "
                f"{cls.__name__} ({declared[0]} v{declared[1]})"
            )
        return self


@functools.cache
def envelope_model(payload_cls: type[P]) -> type[Envelope[P]]:
    """The envelope class parametrised with ``payload_cls`` (cached)."""
    return Envelope[payload_cls]  # type: ignore[valid-type]


def new_envelope(
    payload: P,
    *,
    event_id: UUID,
    tenant_id: str,
    key: str,
    occurred_at: datetime,
    recorded_at: datetime,
    producer: str,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
) -> Envelope[P]:
    """Wrap ``payload``; the correlation id defaults to the event's own id (a chain's start)."""
    return envelope_model(type(payload))(
        event_id=event_id,
        event_type=payload.EVENT_TYPE,
        event_version=payload.EVENT_VERSION,
        tenant_id=tenant_id,
        key=key,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        producer=producer,
        correlation_id=event_id if correlation_id is None else correlation_id,
        causation_id=causation_id,
        payload=payload,
    )


def encode_event(envelope: Envelope[Any]) -> bytes:
    """Compact UTF-8 JSON of ``envelope``; decimals as strings, datetimes as ISO 8601."""
    return type(envelope).__pydantic_serializer__.to_json(envelope)


def envelope_headers(envelope: Envelope[Any]) -> list[tuple[str, bytes]]:
    """Kafka headers that let consumers and DLQ tools route a record without parsing it."""
    return [
        (HEADER_EVENT_TYPE, envelope.event_type.encode()),
        (HEADER_EVENT_VERSION, str(envelope.event_version).encode()),
        (HEADER_TENANT_ID, envelope.tenant_id.encode()),
        (HEADER_EVENT_ID, str(envelope.event_id).encode()),
    ]


class EventDecodeError(ValueError):
    """Bytes that are not a valid event of a known type and version; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_event(raw: bytes) -> Envelope[EventPayload]:
    """Parse and validate ``raw`` in one pass, upcast an old version; any problem is an EventDecodeError."""
    # Every hop decodes every event, so the common case (a valid event of a current version) takes
    # one pass over the bytes, picking the payload class by event_type as it goes. Anything else is
    # decoded again by the checked path, which upcasts old versions and words the DLQ reason.
    if not _may_hold_non_json_numbers(raw):
        try:
            return cast("Envelope[EventPayload]", _current_envelopes().validate_json(raw))
        except ValidationError:
            pass
    return _decode_checked(raw)


# NaN, Infinity and -Infinity are not JSON, and the checked path refuses them; the one-pass parser
# accepts them, so one in a field the envelope ignores would pass. Each token starts with a capital
# letter, absent from most events: looking for the letter first (memchr) costs a fraction of
# searching for the token, which is then searched for only from where the letter is.
_NON_JSON_NUMBERS = ((b"N", b"NaN"), (b"I", b"Infinity"))


def _may_hold_non_json_numbers(raw: bytes) -> bool:
    for letter, token in _NON_JSON_NUMBERS:
        at = raw.find(letter)
        if at >= 0 and raw.find(token, at) >= 0:
            return True
    return False


@functools.cache
def _current_envelopes() -> SchemaValidator:
    # One validator for the envelopes of every current event type: a tagged union on event_type.
    # Each envelope's schema brings the definitions of its nested models; shared ones (a register
    # value, a charge line) must be given once.
    choices: dict[str, core_schema.CoreSchema] = {}
    definitions: dict[str, core_schema.CoreSchema] = {}
    for event_type, payload_cls in EVENT_TYPES.items():
        schema = envelope_model(payload_cls).__pydantic_core_schema__
        if schema["type"] == "definitions":
            definitions.update((str(d.get("ref")), d) for d in schema["definitions"])
            schema = schema["schema"]
        choices[event_type] = schema
    union = core_schema.tagged_union_schema(choices, discriminator="event_type")
    return SchemaValidator(core_schema.definitions_schema(union, list(definitions.values())))


def _decode_checked(raw: bytes) -> Envelope[EventPayload]:
    try:
        document = pydantic_core.from_json(raw, allow_inf_nan=False)
    except (ValueError, TypeError) as exc:
        raise EventDecodeError(_truncate(f"not JSON: {exc}")) from None
    if not isinstance(document, dict):
        raise EventDecodeError(f"expected a JSON object, got {type(document).__name__}")
    payload_cls, document = _current_form(document)
    try:
        return envelope_model(payload_cls).model_validate(document)
    except ValidationError as exc:
        raise EventDecodeError(_validation_reason(payload_cls, exc)) from None


def _current_form(document: dict[str, Any]) -> tuple[type[EventPayload], dict[str, Any]]:
    event_type = document.get("event_type")
    version = document.get("event_version")
    if not isinstance(event_type, str):
        raise EventDecodeError(f"event_type must be a string, got {_describe(event_type)}")
    if not isinstance(version, int) or isinstance(version, bool):
        raise EventDecodeError(f"event_version must be an integer, got {_describe(version)}")
    payload_cls = EVENT_TYPES.get(event_type)
    if payload_cls is None:
        raise EventDecodeError(_truncate(f"unknown event type {event_type!r}"))
    current = payload_cls.EVENT_VERSION
    if version == current:
        return payload_cls, document
    if version > current or version < 1:
        # A newer version comes from a producer deployed ahead of this consumer: dead-letter it
        # and replay after upgrading, rather than guess at fields this code does not know.
        raise EventDecodeError(
            f"{event_type} v{version} is not known here (current v{current}); upgrade the consumer"
        )
    return payload_cls, _upcast(document, event_type, version, current)


def _upcast(document: dict[str, Any], event_type: str, version: int, current: int) -> dict[str, Any]:
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise EventDecodeError(f"payload must be a JSON object, got {_describe(payload)}")
    try:
        for step in upcasters_from(event_type, version):
            payload = step(payload)
    except Exception as exc:  # an upcaster meets arbitrary old JSON; any failure is the data's
        raise EventDecodeError(
            _truncate(f"cannot upcast {event_type} v{version} to v{current}: {exc!r}")
        ) from None
    return {**document, "event_version": current, "payload": payload}


def _validation_reason(payload_cls: type[EventPayload], exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    shown = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or '(envelope)'}: {e['msg']}"
        for e in errors[:_ERRORS_IN_REASON]
    )
    more = f" (+{len(errors) - _ERRORS_IN_REASON} more)" if len(errors) > _ERRORS_IN_REASON else ""
    name = f"{payload_cls.EVENT_TYPE} v{payload_cls.EVENT_VERSION}"
    return _truncate(f"invalid {name}: {len(errors)} error(s): {shown}{more}")


def _describe(value: object) -> str:
    return "nothing" if value is None else _truncate(f"{type(value).__name__} {value!r}", 80)


def _truncate(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
