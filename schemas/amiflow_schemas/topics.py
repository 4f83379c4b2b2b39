"""The topic registry: names, keys, partitions and retention of every Kafka topic amiflow uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from amiflow_schemas import events as ev

FOREVER = -1
DAY_MS = 24 * 60 * 60 * 1000

CONSUMING_SERVICES = ("ingest", "vee", "billing", "commands", "notify")
# The audit trail is written by every service API (each service its own hash chain), so its topic names
# no single producer; the records say which service wrote them.
EVERY_SERVICE = "every-service"


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: what it carries, how it is keyed and how long it keeps data."""

    name: str
    key: str  # what the Kafka key is: a payload field name, e.g. "meter_id"
    partitions: int
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int  # -1 keeps data forever
    event_types: tuple[str, ...]
    producer: str  # the one service that writes it
    description: str
    public: bool  # part of the contract with downstream systems (AsyncAPI "public" tag)


def _dead_letters(service: str) -> TopicSpec:
    return TopicSpec(
        name=f"amiflow.dlq.{service}",
        key="original key",
        partitions=3,
        cleanup_policy="delete",
        # A dead letter is the only copy of what could not be applied; it waits for a fix
        # and a replay however long that takes ("nothing is lost").
        retention_ms=FOREVER,
        event_types=(),
        producer=service,
        description=(
            f"Records {service} could not apply, raw bytes and original headers, plus dlq.* "
            "headers saying why, from which topic/partition/offset and when."
        ),
        public=False,
    )


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="amiflow.ingest.readings",
        key="meter_id",
        partitions=12,
        cleanup_policy="delete",
        retention_ms=FOREVER,  # raw data is immutable and re-validated from here (vee.md §0)
        event_types=(ev.ReadingReceived.EVENT_TYPE,),
        producer="ingest",
        description="Meter readings as received, before validation.",
        public=True,
    ),
    TopicSpec(
        name="amiflow.ingest.device-status",
        key="meter_id",
        partitions=12,  # as many as readings, so VEE can join the two by meter without repartitioning
        cleanup_policy="delete",
        retention_ms=FOREVER,
        event_types=(ev.DeviceStatusReported.EVENT_TYPE,),
        producer="ingest",
        description="Valve, relay, battery and alarm bits reported by devices.",
        public=False,
    ),
    TopicSpec(
        name="amiflow.ingest.rejected-frames",
        key="source_id",
        partitions=3,
        cleanup_policy="delete",
        retention_ms=30 * DAY_MS,  # for diagnosing devices; the counts live on in metrics
        event_types=(ev.FrameRejected.EVENT_TYPE,),
        producer="ingest",
        description="Frames and requests ingest could not understand, raw, with the reason.",
        public=False,
    ),
    TopicSpec(
        name="amiflow.registry.devices",
        key="device_key",  # <tenant>/<kind>/<id>: tenants may reuse device ids, compaction must not merge them
        partitions=6,
        # Compacted: the last record per device is its whole state (events/registry.py), so a
        # consumer reading from the start materialises every device without the full history.
        cleanup_policy="compact",
        retention_ms=FOREVER,
        event_types=(
            ev.MeterDefined.EVENT_TYPE,
            ev.MeterReplaced.EVENT_TYPE,
            ev.GatewayDefined.EVENT_TYPE,
            ev.SimCardDefined.EVENT_TYPE,
        ),
        producer="ingest",
        description="The device registry: each meter's, gateway's and SIM card's current state.",
        public=False,
    ),
    TopicSpec(
        name="amiflow.vee.readings",
        key="meter_id",
        partitions=12,
        cleanup_policy="delete",
        retention_ms=FOREVER,
        event_types=(ev.ReadingValidated.EVENT_TYPE, ev.ReadingCorrected.EVENT_TYPE),
        producer="vee",
        description="Validated, estimated and corrected readings with consumption: what bills.",
        public=True,
    ),
    TopicSpec(
        name="amiflow.vee.alarms",
        key="subject_id",
        partitions=6,
        cleanup_policy="delete",
        retention_ms=FOREVER,
        event_types=(ev.AlarmRaised.EVENT_TYPE, ev.AlarmCleared.EVENT_TYPE, ev.AlarmAcknowledged.EVENT_TYPE),
        producer="vee",
        description="Leak, burst, tamper, consumption and district alarms, raised and cleared.",
        public=True,
    ),
    TopicSpec(
        name="amiflow.billing.ledger",
        key="account_id",
        partitions=12,
        cleanup_policy="delete",
        retention_ms=FOREVER,  # the balance is the fold of the ledger; losing an entry loses money
        event_types=(
            ev.AccountOpened.EVENT_TYPE,
            ev.AccountSettingsChanged.EVENT_TYPE,
            ev.MeterLinkedToAccount.EVENT_TYPE,
            ev.MeterUnlinkedFromAccount.EVENT_TYPE,
            ev.ChargeApplied.EVENT_TYPE,
            ev.PaymentReceived.EVENT_TYPE,
            ev.RefundIssued.EVENT_TYPE,
            ev.SubsidyGranted.EVENT_TYPE,
            ev.AdjustmentPosted.EVENT_TYPE,
            ev.RecurringChargePosted.EVENT_TYPE,
            ev.DailySettled.EVENT_TYPE,
            ev.AccountClosed.EVENT_TYPE,
        ),
        producer="billing",
        # Accounts and meter links share the ledger's key and partition, so a replay from the
        # start meets each account's opening and links before the entries that depend on them.
        description=(
            "The append-only prepaid ledger: accounts and their meters, charges, payments, refunds, "
            "subsidies, adjustments, recurring charges, daily settlements."
        ),
        public=True,
    ),
    TopicSpec(
        name="amiflow.billing.tariffs",
        key="tariff_id",
        partitions=3,
        # Not compacted: each record is one version and rating a late or corrected reading needs
        # the versions that were in force back then, not only the newest.
        cleanup_policy="delete",
        retention_ms=FOREVER,
        event_types=(ev.TariffPublished.EVENT_TYPE,),
        producer="billing",
        description="Tariff versions by effective date: step, time-of-use, fixed and recurring prices.",
        public=True,
    ),
    TopicSpec(
        name="amiflow.billing.balance",
        key="account_id",
        partitions=12,
        cleanup_policy="delete",
        retention_ms=FOREVER,
        event_types=(
            ev.BalanceLow.EVENT_TYPE,
            ev.BalanceDepleted.EVENT_TYPE,
            ev.BalanceRestored.EVENT_TYPE,
        ),
        producer="billing",
        description="Balance state changes: low, depleted, restored.",
        public=True,
    ),
    TopicSpec(
        name="amiflow.commands.lifecycle",
        key="device_id",
        partitions=6,
        cleanup_policy="delete",
        retention_ms=FOREVER,  # every cut-off and restore must stay explainable to the customer
        event_types=(
            ev.ValveCommandIssued.EVENT_TYPE,
            ev.RelayCommandIssued.EVENT_TYPE,
            ev.CommandAcknowledged.EVENT_TYPE,
            ev.CommandConfirmed.EVENT_TYPE,
            ev.CommandFailed.EVENT_TYPE,
            ev.CommandExpired.EVENT_TYPE,
            ev.CommandCancelled.EVENT_TYPE,
            ev.CommandCompleted.EVENT_TYPE,
            ev.CommandDispatched.EVENT_TYPE,
            ev.CommandEscalated.EVENT_TYPE,
            ev.CommandProposed.EVENT_TYPE,
            ev.CommandRequested.EVENT_TYPE,
            ev.CommandScheduled.EVENT_TYPE,
        ),
        producer="commands",
        description="Commands from request, schedule and dispatch to confirmation, failure, expiry or cancellation.",
        public=True,
    ),
    TopicSpec(
        name="amiflow.notify.deliveries",
        key="recipient_id",
        partitions=3,
        cleanup_policy="delete",
        retention_ms=FOREVER,
        event_types=(ev.NotificationSent.EVENT_TYPE,),
        producer="notify",
        description="Messages handed to e-mail, SMS, WeChat and webhook providers.",
        public=False,
    ),
    TopicSpec(
        name="amiflow.audit",
        key="tenant_id",
        partitions=3,
        cleanup_policy="delete",
        # The copy of every service's audit chain outside its database: what an auditor compares the
        # chain with when the database itself is in doubt. Deleting it would defeat its purpose.
        retention_ms=FOREVER,
        event_types=(ev.AuditRecorded.EVENT_TYPE,),
        producer=EVERY_SERVICE,
        description=(
            "Every operator action and refused call, as appended to each service's hash-chained audit trail: "
            "the canonical record, its sequence number and its hash."
        ),
        public=True,
    ),
    *(_dead_letters(service) for service in CONSUMING_SERVICES),
)

_BY_NAME = {topic.name: topic for topic in TOPICS}
_BY_EVENT = {event_type: topic for topic in TOPICS for event_type in topic.event_types}


def topic_named(name: str) -> TopicSpec:
    """The topic called ``name``; KeyError lists the known names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no topic named {name!r}; known topics: {', '.join(_BY_NAME)}") from None


def topic_for_event(event_type: str) -> TopicSpec:
    """The one topic that carries ``event_type``; KeyError for an event type on no topic."""
    try:
        return _BY_EVENT[event_type]
    except KeyError:
        raise KeyError(f"no topic carries event type {event_type!r}") from None


def dead_letter_topic(service: str) -> TopicSpec:
    """The dead-letter topic of a consuming ``service``, e.g. ``amiflow.dlq.vee``."""
    return topic_named(f"amiflow.dlq.{service}")
