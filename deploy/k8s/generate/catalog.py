"""What each service reads, writes and talks to: the facts the manifests are generated from.

Reads are the `Subscription`s and `inbox_agent`s of each `services/<name>/<name>/main.py` (and billing's
`rebuild` tool); writes are the registry's producer of each topic plus the topics a service writes
without owning them (deploy/kafka-acls.md says why for each). tests/deploy checks this catalog
against main.py and the registry, so it cannot silently fall behind the code.

The console (`CONSOLE`) is not one of `SERVICES`: it has no database, no Kafka user and no worker, only
the APIs it proxies to (tests/deploy checks them against console/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from amiflow_schemas.topics import CONSUMING_SERVICES, TOPICS, topic_named

AUDIT_TOPIC = "amiflow.audit"
NAMESPACE = "amiflow"
KAFKA_CLUSTER = "amiflow"  # the Strimzi Kafka resource; its bootstrap service is amiflow-kafka-bootstrap
KAFKA_TLS_PORT = 9093
POSTGRES_CLUSTER = "amiflow-pg"  # the CloudNativePG Cluster; its primary service is amiflow-pg-rw
IMAGE_REPOSITORY = "amiflow"  # images are amiflow/<service>:<tag>, one Dockerfile target each
# Where spans go (OTLP/HTTP): an OpenTelemetry Collector Service `otel-collector` in namespace `observability`
# (the opentelemetry-collector chart's usual name). The overlays may unset the endpoint; the egress rule stays.
OTEL_COLLECTOR_NAMESPACE = "observability"
OTLP_HTTP_PORT = 4318
OTEL_COLLECTOR_ENDPOINT = f"http://otel-collector.{OTEL_COLLECTOR_NAMESPACE}:{OTLP_HTTP_PORT}"


@dataclass(frozen=True)
class Consumer:
    """One consumer group of a service's worker and the topics it reads."""

    group: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Service:
    """One amiflow service as the cluster sees it: ports, Kafka access, what its worker calls outside."""

    name: str
    api_port: int
    consumers: tuple[Consumer, ...] = ()
    # Topics written beyond those the registry names this service the producer of.
    also_writes: tuple[str, ...] = ()
    # Topics read without a consumer group (assigned partitions, offsets not committed): a tool's replay.
    reads_without_group: tuple[str, ...] = ()
    # Where the worker connects outside the cluster: (description, TCP ports).
    worker_egress: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Settings of the service that the manifests set explicitly (besides ports, host and database).
    settings: tuple[tuple[str, str], ...] = ()
    # Secrets the service reads: (setting, secret name, key, optional).
    secrets: tuple[tuple[str, str, str, bool], ...] = ()
    # Identity's worker consumes nothing: more than one replica only repeats its housekeeping.
    worker_scales: bool = True

    @property
    def prefix(self) -> str:
        return f"{self.name.upper()}_"

    @property
    def ops_port(self) -> int:
        return self.api_port + 100  # ServiceSettings.resolved_ops_port

    @property
    def kafka_user(self) -> str:
        return f"amiflow-{self.name}"

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for c in self.consumers for t in c.topics))

    @property
    def writes(self) -> tuple[str, ...]:
        owned = [t.name for t in TOPICS if t.producer == self.name and not t.name.startswith("amiflow.dlq.")]
        dead_letters = [f"amiflow.dlq.{self.name}"] if self.name in CONSUMING_SERVICES else []
        return tuple(dict.fromkeys([*owned, *self.also_writes, *dead_letters, AUDIT_TOPIC]))

    @property
    def max_worker_replicas(self) -> int:
        """Replicas beyond the partitions of the topics a worker consumes get no partition and sit idle."""
        return max((topic_named(t).partitions for t in self.reads), default=1)


def _faust(app_id: str, *topics: str) -> Consumer:
    return Consumer(app_id, topics)  # a Faust app's consumer group is its app id


SERVICES: tuple[Service, ...] = (
    Service(
        name="ingest", api_port=8001,
        consumers=(Consumer("ingest.downlink", ("amiflow.commands.lifecycle",)),),
        # The gateway's CommandAcknowledged / CommandFailed / CommandExpired go on the commands' topic.
        also_writes=("amiflow.commands.lifecycle",),
        settings=(("INGEST_GATEWAY_HOST", "0.0.0.0"), ("INGEST_GATEWAY_PORT", "9100")),  # noqa: S104 - in a pod
    ),
    Service(
        name="vee", api_port=8002,
        consumers=(_faust("amiflow-vee", "amiflow.ingest.readings", "amiflow.registry.devices",
                          "amiflow.ingest.device-status"),),
        settings=(("VEE_FAUST_APP_ID", "amiflow-vee"),),
    ),
    Service(
        name="billing", api_port=8003,
        consumers=(_faust("amiflow-billing", "amiflow.vee.readings"),),
        also_writes=("amiflow.vee.alarms",),  # AlarmRaised for consumption nobody pays for
        reads_without_group=("amiflow.billing.tariffs", "amiflow.billing.ledger", "amiflow.billing.balance"),
        settings=(("BILLING_FAUST_APP_ID", "amiflow-billing"),),
        secrets=(("BILLING_PAYMENT_PROVIDER_SECRETS", "amiflow-billing-payment-providers", "secrets.json", True),),
    ),
    Service(
        name="commands", api_port=8004,
        consumers=(
            Consumer("commands.balance", ("amiflow.billing.balance",)),
            Consumer("commands.registry", ("amiflow.registry.devices",)),
            Consumer("commands.lifecycle", ("amiflow.commands.lifecycle",)),
            Consumer("commands.device-status", ("amiflow.ingest.device-status",)),
            Consumer("commands.alarms", ("amiflow.vee.alarms",)),
            Consumer("commands.accounts", ("amiflow.billing.ledger",)),
        ),
    ),
    Service(
        name="notify", api_port=8005,
        consumers=(Consumer("notify.triggers", ("amiflow.billing.balance", "amiflow.billing.ledger",
                                                "amiflow.vee.alarms", "amiflow.commands.lifecycle")),),
        # E-mail over SMTP (submission, SMTPS, relay), SMS / WeChat APIs and webhooks over HTTPS (and HTTP).
        worker_egress=(("SMTP servers", (25, 465, 587)), ("SMS, WeChat and webhook endpoints", (443, 80))),
        settings=(("NOTIFY_CONSUMER_GROUP", "notify.triggers"),),
        secrets=(("NOTIFY_TENANT_CHANNELS", "amiflow-notify-channels", "tenant-channels.json", True),),
    ),
    Service(
        name="identity", api_port=8006,
        secrets=(("IDENTITY_KEY_ENCRYPTION_KEY", "amiflow-identity-keys", "key-encryption-key", False),),
        worker_scales=False,
    ),
)


def service_named(name: str) -> Service:
    """The catalog entry of one service."""
    return next(s for s in SERVICES if s.name == name)


@dataclass(frozen=True)
class Console:
    """The operator console and customer portal (services/console): one stateless process that serves the
    built web app and forwards `/api/<service>/…` to that service's API. It holds no data and no secret."""

    name: str
    api_port: int
    # The services whose APIs it forwards to (console/config.py UPSTREAM_PORTS).
    upstreams: tuple[str, ...]
    # Platform settings (ConfigMap amiflow-platform) it reads, each as (name, optional). Not the whole map:
    # its Kafka settings ask for a SASL user the console does not have, and ServiceSettings refuses them
    # half-set. Optional ones are those an overlay may leave out (dev has no collector) or that are unset
    # unless a tenant needs them.
    platform_settings: tuple[tuple[str, bool], ...]

    @property
    def prefix(self) -> str:
        return f"{self.name.upper()}_"

    def upstream_urls(self) -> dict[str, str]:
        """Each API by its in-cluster Service (namespace-relative: the overlays choose the namespace)."""
        return {name: f"http://{name}-api:{service_named(name).api_port}" for name in self.upstreams}


CONSOLE = Console(
    name="console", api_port=8007,
    upstreams=tuple(s.name for s in SERVICES),
    platform_settings=(("AMIFLOW_ENV", False), ("AMIFLOW_TIME_ZONE", False), ("AMIFLOW_TENANT_TIME_ZONES", True),
                       ("LOG_LEVEL", False), ("LOG_FORMAT", False), ("OTEL_EXPORTER_OTLP_ENDPOINT", True)),
)
