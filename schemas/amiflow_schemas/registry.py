"""Which payload class an (event type, version) decodes into, and how old versions upcast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amiflow_schemas import events
from amiflow_schemas.events.devices import (
    DeviceStatusReportedV1,
    upcast_device_status_reported_v1_v2,
)
from amiflow_schemas.payload import EventPayload

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        events.ReadingReceived,
        events.DeviceStatusReported,
        events.FrameRejected,
        events.ReadingValidated,
        events.ReadingCorrected,
        events.AlarmRaised,
        events.AlarmCleared,
        events.AlarmAcknowledged,
        events.ChargeApplied,
        events.PaymentReceived,
        events.RefundIssued,
        events.SubsidyGranted,
        events.AdjustmentPosted,
        events.RecurringChargePosted,
        events.DailySettled,
        events.AccountOpened,
        events.AccountSettingsChanged,
        events.AccountClosed,
        events.MeterLinkedToAccount,
        events.MeterUnlinkedFromAccount,
        events.TariffPublished,
        events.BalanceLow,
        events.BalanceDepleted,
        events.BalanceRestored,
        events.ValveCommandIssued,
        events.RelayCommandIssued,
        events.CommandAcknowledged,
        events.CommandConfirmed,
        events.CommandFailed,
        events.CommandExpired,
        events.CommandCancelled,
        events.CommandCompleted,
        events.CommandDispatched,
        events.CommandEscalated,
        events.CommandProposed,
        events.CommandRequested,
        events.CommandScheduled,
        events.NotificationSent,
        events.MeterDefined,
        events.MeterReplaced,
        events.GatewayDefined,
        events.SimCardDefined,
        events.AuditRecorded,
    )
}
"""The current version of every event type, by name."""

# Superseded versions: only their JSON Schema is generated from them (to keep documenting what
# is on the topics); decoding never uses them, it upcasts to the current class instead.
LEGACY_VERSIONS: dict[tuple[str, int], type[EventPayload]] = {
    (cls.EVENT_TYPE, cls.EVENT_VERSION): cls for cls in (DeviceStatusReportedV1,)
}

# (event type, from version) -> function turning that version's payload into the next one's.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("DeviceStatusReported", 1): upcast_device_status_reported_v1_v2,
}


def event_class(event_type: str) -> type[EventPayload]:
    """The current payload class of ``event_type``; KeyError names the unknown type."""
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise KeyError(f"unknown event type {event_type!r}") from None


def upcasters_from(event_type: str, version: int) -> list[Upcaster]:
    """The upcasters that take ``version`` to the current one, in order; KeyError if a step is missing."""
    current = event_class(event_type).EVENT_VERSION
    chain = []
    for step in range(version, current):
        try:
            chain.append(UPCASTERS[(event_type, step)])
        except KeyError:
            raise KeyError(f"no upcaster from {event_type} v{step} to v{step + 1}") from None
    return chain


def all_versions() -> list[type[EventPayload]]:
    """Every payload class with a schema, current and legacy, sorted by (type, version)."""
    classes = [*EVENT_TYPES.values(), *LEGACY_VERSIONS.values()]
    return sorted(classes, key=lambda cls: (cls.EVENT_TYPE, cls.EVENT_VERSION))
