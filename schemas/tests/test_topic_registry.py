"""The topic registry: every event on exactly one topic, consistent keys, dead letters kept."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from amiflow_schemas import EVENT_TYPES
from amiflow_schemas.topics import (
    CONSUMING_SERVICES,
    EVERY_SERVICE,
    FOREVER,
    TOPICS,
    TopicSpec,
    dead_letter_topic,
    topic_for_event,
    topic_named,
)


def test_every_event_type_is_on_exactly_one_topic() -> None:
    placements = Counter(event_type for topic in TOPICS for event_type in topic.event_types)

    assert {name: placements[name] for name in EVENT_TYPES} == dict.fromkeys(EVENT_TYPES, 1)
    assert set(placements) <= set(EVENT_TYPES), "a topic lists an event type that does not exist"


def test_topic_names_are_unique_and_follow_the_convention() -> None:
    names = [topic.name for topic in TOPICS]

    assert len(names) == len(set(names))
    # amiflow.<producer>.<what>; the audit trail, written by every service, is amiflow.audit.
    assert all(re.fullmatch(r"amiflow\.[a-z]+\.[a-z][a-z-]*", name) or name == "amiflow.audit"
               for name in names), names


@pytest.mark.parametrize("topic", [t for t in TOPICS if t.event_types], ids=lambda t: t.name)
def test_the_topic_key_is_a_field_of_every_event_on_it(topic: TopicSpec) -> None:
    for event_type in topic.event_types:
        assert topic.key in EVENT_TYPES[event_type].model_fields, (topic.name, event_type)


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_topic_settings_are_valid_kafka_settings(topic: TopicSpec) -> None:
    assert topic.partitions >= 1
    assert topic.cleanup_policy in ("delete", "compact")
    assert topic.retention_ms == FOREVER or topic.retention_ms > 0
    assert topic.description and topic.producer in (*CONSUMING_SERVICES, EVERY_SERVICE)


@pytest.mark.parametrize("service", CONSUMING_SERVICES)
def test_each_consuming_service_has_a_dead_letter_topic_that_keeps_everything(service: str) -> None:
    topic = dead_letter_topic(service)

    assert topic.name == f"amiflow.dlq.{service}"
    assert topic.event_types == ()
    assert topic.retention_ms == FOREVER and topic.cleanup_policy == "delete"
    assert topic.producer == service and not topic.public


def test_readings_and_ledger_keep_data_forever_on_the_right_keys() -> None:
    readings, ledger = topic_named("amiflow.ingest.readings"), topic_named("amiflow.billing.ledger")

    assert (readings.key, readings.partitions, readings.retention_ms) == ("meter_id", 12, FOREVER)
    assert (ledger.key, ledger.retention_ms) == ("account_id", FOREVER)
    assert topic_named("amiflow.ingest.rejected-frames").retention_ms == 30 * 24 * 3600 * 1000


def test_topic_for_event_finds_the_carrying_topic() -> None:
    assert topic_for_event("ReadingValidated").name == "amiflow.vee.readings"
    assert topic_for_event("CommandFailed").name == "amiflow.commands.lifecycle"


def test_unknown_names_raise_key_errors_that_say_what_was_asked() -> None:
    with pytest.raises(KeyError, match=r"no topic named 'amiflow\.nope'"):
        topic_named("amiflow.nope")
    with pytest.raises(KeyError, match="no topic carries event type 'Nope'"):
        topic_for_event("Nope")


def test_topic_specs_are_immutable() -> None:
    with pytest.raises(AttributeError):
        TOPICS[0].partitions = 1  # type: ignore[misc]
