"""The AsyncAPI 3.0 document: topics as channels, events as messages, producers' send operations."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from amiflow_schemas import __version__
from amiflow_schemas.contract import envelope_json_schema
from amiflow_schemas.envelope import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_EVENT_VERSION,
    HEADER_TENANT_ID,
    encode_event,
)
from amiflow_schemas.examples import example_envelope, example_payloads
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.registry import EVENT_TYPES
from amiflow_schemas.topics import TOPICS, TopicSpec, topic_for_event

ASYNCAPI_FILE = "asyncapi.yaml"
KAFKA_BINDING_VERSION = "0.5.0"
DEAD_LETTER = "DeadLetter"

_DESCRIPTION = """\
Every amiflow event is one Kafka record: the key is the topic's key (meter, account, device …),
the value is the UTF-8 JSON envelope below, and the headers event_type, event_version,
tenant_id and event_id repeat the envelope so records can be routed without parsing.

Decimals (money, registers, quantities) are JSON strings in fixed-point notation, never numbers.
Datetimes are ISO 8601 with an offset. Money is `amount` (or a named balance) plus an ISO 4217
`currency`. An optional field may be added within a version; anything else makes a new version,
and consumers of this contract upcast old versions. The JSON Schema of every version, including
superseded ones, is in jsonschema/ beside this file.
"""


def asyncapi_document() -> dict[str, Any]:
    """The whole AsyncAPI document as plain data."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    examples = example_payloads()
    for cls in EVENT_TYPES.values():
        schemas[_envelope_name(cls)] = _absorb_defs(envelope_json_schema(cls), schemas)
        messages[cls.EVENT_TYPE] = _message(cls, examples[cls.EVENT_TYPE])
    messages[DEAD_LETTER] = _dead_letter_message()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "amiflow events",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "channels": {topic.name: _channel(topic) for topic in TOPICS},
        "operations": {f"send-{topic.name}": _send_operation(topic) for topic in TOPICS},
        "components": {"schemas": schemas, "messages": messages},
    }


def render_asyncapi() -> str:
    """The document as deterministic YAML text."""
    text: str = yaml.safe_dump(
        asyncapi_document(), sort_keys=True, allow_unicode=True, width=100, default_flow_style=False
    )
    return text


def _envelope_name(cls: type[EventPayload]) -> str:
    return f"{cls.EVENT_TYPE}Envelope"


def _absorb_defs(schema: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    # AsyncAPI resolves "#/..." against the whole document, so each schema's local $defs move
    # to components/schemas and its references are rewritten to point there.
    schema = _rewrite_refs(copy.deepcopy(schema))
    schema.pop("$schema", None)
    for name, definition in schema.pop("$defs", {}).items():
        if shared.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both called {name!r}; rename one model")
    return schema


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: value.replace("#/$defs/", "#/components/schemas/")
            if key == "$ref" and isinstance(value, str)
            else _rewrite_refs(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _headers(cls: type[EventPayload]) -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "Kafka record headers (UTF-8 values) repeating the envelope for routing.",
        "required": [HEADER_EVENT_TYPE, HEADER_EVENT_VERSION, HEADER_TENANT_ID, HEADER_EVENT_ID],
        "properties": {
            HEADER_EVENT_TYPE: {**text, "const": cls.EVENT_TYPE},
            HEADER_EVENT_VERSION: {**text, "const": str(cls.EVENT_VERSION)},
            HEADER_TENANT_ID: text,
            HEADER_EVENT_ID: {**text, "format": "uuid"},
        },
    }


def _message(cls: type[EventPayload], example_payload: EventPayload) -> dict[str, Any]:
    example = example_envelope(example_payload)
    return {
        "name": cls.EVENT_TYPE,
        "title": f"{cls.EVENT_TYPE} v{cls.EVENT_VERSION}",
        "summary": (cls.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "headers": _headers(cls),
        "payload": {"$ref": f"#/components/schemas/{_envelope_name(cls)}"},
        "bindings": {"kafka": _key_binding(topic_for_event(cls.EVENT_TYPE))},
        "examples": [
            {
                "name": f"{cls.EVENT_TYPE}-example",
                "headers": {
                    HEADER_EVENT_TYPE: example.event_type,
                    HEADER_EVENT_VERSION: str(example.event_version),
                    HEADER_TENANT_ID: example.tenant_id,
                    HEADER_EVENT_ID: str(example.event_id),
                },
                "payload": json.loads(encode_event(example)),
            }
        ],
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A record its consumer could not apply, kept byte for byte.",
        "description": (
            "The value, key and headers are those of the original record. The consuming "
            "service adds dlq.* headers: why it failed, what kind of failure, which consumer, "
            "the source topic, partition and offset, and when. Fix the cause, then replay."
        ),
        "payload": {"description": "the original record's value, unchanged"},
    }


def _key_binding(topic: TopicSpec) -> dict[str, Any]:
    return {
        "key": {"type": "string", "description": f"the Kafka key: {topic.key}"},
        "bindingVersion": KAFKA_BINDING_VERSION,
    }


def _channel(topic: TopicSpec) -> dict[str, Any]:
    names = topic.event_types or (DEAD_LETTER,)
    return {
        "address": topic.name,
        "title": topic.name,
        "description": topic.description,
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        "tags": [{"name": "public" if topic.public else "internal"}],
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": {
                    "cleanup.policy": [topic.cleanup_policy],
                    "retention.ms": topic.retention_ms,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _send_operation(topic: TopicSpec) -> dict[str, Any]:
    names = topic.event_types or (DEAD_LETTER,)
    return {
        "action": "send",
        "title": f"{topic.producer} sends to {topic.name}",
        "channel": {"$ref": f"#/channels/{topic.name}"},
        "messages": [{"$ref": f"#/channels/{topic.name}/messages/{name}"} for name in names],
        "tags": [{"name": f"producer:{topic.producer}"}],
    }
