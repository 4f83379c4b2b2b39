"""amiflow's event contract: typed envelopes and payloads, their versions and topics."""

from amiflow_schemas.envelope import (
    Envelope,
    EventDecodeError,
    decode_event,
    encode_event,
    envelope_headers,
    new_envelope,
)
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.registry import EVENT_TYPES, event_class

__version__ = "0.1.0"

__all__ = [
    "EVENT_TYPES",
    "Envelope",
    "EventDecodeError",
    "EventPayload",
    "decode_event",
    "encode_event",
    "envelope_headers",
    "event_class",
    "new_envelope",
]
