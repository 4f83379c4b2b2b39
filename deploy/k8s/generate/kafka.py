"""Strimzi resources: the KRaft cluster, one KafkaTopic per registry topic, one KafkaUser per service."""

from __future__ import annotations

from typing import Any

from amiflow_schemas.topics import TOPICS, TopicSpec

from deploy.k8s.generate.catalog import KAFKA_CLUSTER, KAFKA_TLS_PORT, SERVICES, Service

STRIMZI_API = "kafka.strimzi.io/v1"
# Production replication; the dev overlay patches both down to one broker.
REPLICAS = 3
MIN_IN_SYNC = 2
PART_OF = {"app.kubernetes.io/part-of": "amiflow"}


def topic_resource_name(topic: str) -> str:
    """Kubernetes name of a topic's KafkaTopic (dots kept out of names other tools template)."""
    return topic.replace(".", "-")


def kafka_topic(topic: TopicSpec) -> dict[str, Any]:
    """The KafkaTopic of one registry topic: partitions, cleanup and retention exactly as registered."""
    return {
        "apiVersion": STRIMZI_API, "kind": "KafkaTopic",
        "metadata": {
            "name": topic_resource_name(topic.name),
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **PART_OF},
            "annotations": {"amiflow.io/key": topic.key, "amiflow.io/producer": topic.producer,
                            "amiflow.io/description": topic.description},
        },
        "spec": {
            "topicName": topic.name,
            "partitions": topic.partitions,
            "replicas": REPLICAS,
            "config": {
                "cleanup.policy": topic.cleanup_policy,
                "retention.ms": topic.retention_ms,
                "min.insync.replicas": MIN_IN_SYNC,
            },
        },
    }


def _acl(kind: str, name: str, *operations: str) -> dict[str, Any]:
    return {"resource": {"type": kind, "name": name, "patternType": "literal"}, "operations": list(operations)}


def service_acls(service: Service) -> list[dict[str, Any]]:
    """Exactly what the service's clients do: Read its topics and groups, Write what it produces."""
    acls = [_acl("topic", t, "Read") for t in dict.fromkeys([*service.reads, *service.reads_without_group])]
    acls += [_acl("group", c.group, "Read") for c in service.consumers]
    acls += [_acl("topic", t, "Write") for t in service.writes]
    return acls


def kafka_user(service: Service) -> dict[str, Any]:
    """The service's SCRAM user; the User Operator writes its password to the secret of the same name."""
    return {
        "apiVersion": STRIMZI_API, "kind": "KafkaUser",
        "metadata": {"name": service.kafka_user,
                     "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, "app.kubernetes.io/name": service.name,
                                **PART_OF}},
        "spec": {"authentication": {"type": "scram-sha-512"},
                 "authorization": {"type": "simple", "acls": service_acls(service)}},
    }


def operations_user() -> dict[str, Any]:
    """`amiflow backup` / `restore` / `audit verify --against-kafka`: every topic and every group."""
    acls = [
        {"resource": {"type": "topic", "name": "amiflow.", "patternType": "prefix"},
         "operations": ["Read", "Write", "Describe", "Create", "Alter", "DescribeConfigs"]},
        *({"resource": {"type": "group", "name": c.group, "patternType": "literal"},
           "operations": ["Read", "Describe", "Delete"]} for s in SERVICES for c in s.consumers),
    ]
    return {
        "apiVersion": STRIMZI_API, "kind": "KafkaUser",
        "metadata": {"name": "amiflow-operations", "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **PART_OF}},
        "spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": acls}},
    }


def _node_pool(name: str, roles: list[str], size: str) -> dict[str, Any]:
    return {
        "apiVersion": STRIMZI_API, "kind": "KafkaNodePool",
        "metadata": {"name": name, "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **PART_OF}},
        "spec": {
            "replicas": REPLICAS,
            "roles": roles,
            "storage": {"type": "jbod", "volumes": [
                {"id": 0, "type": "persistent-claim", "size": size, "deleteClaim": False, "kraftMetadata": "shared"},
            ]},
            "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
        },
    }


def kafka_cluster() -> list[dict[str, Any]]:
    """A KRaft cluster: three controllers and three brokers in their own pools, SCRAM over TLS, ACLs."""
    kafka = {
        "apiVersion": STRIMZI_API, "kind": "Kafka",
        "metadata": {"name": KAFKA_CLUSTER, "labels": dict(PART_OF),
                     "annotations": {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}},
        "spec": {
            "kafka": {
                "listeners": [{
                    "name": "tls", "port": KAFKA_TLS_PORT, "type": "internal", "tls": True,
                    "authentication": {"type": "scram-sha-512"},
                    # Only amiflow's pods reach the brokers (Strimzi writes this into its NetworkPolicy).
                    "networkPolicyPeers": [{"podSelector": {"matchLabels": dict(PART_OF)}}],
                }],
                "authorization": {"type": "simple"},
                "config": {
                    # Topics come from KafkaTopic resources only: a typo in a topic name must fail, not create.
                    "auto.create.topics.enable": False,
                    "default.replication.factor": REPLICAS,
                    "min.insync.replicas": MIN_IN_SYNC,
                    "offsets.topic.replication.factor": REPLICAS,
                    "transaction.state.log.replication.factor": REPLICAS,
                    "transaction.state.log.min.isr": MIN_IN_SYNC,
                    "allow.everyone.if.no.acl.found": False,
                },
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }
    return [kafka, _node_pool("controller", ["controller"], "20Gi"), _node_pool("broker", ["broker"], "200Gi")]


def topics() -> list[dict[str, Any]]:
    """Every registry topic as a KafkaTopic, in registry order."""
    return [kafka_topic(t) for t in TOPICS]


def users() -> list[dict[str, Any]]:
    """One KafkaUser per service, and the operations user."""
    return [*(kafka_user(s) for s in SERVICES), operations_user()]
