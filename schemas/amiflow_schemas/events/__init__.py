"""Every event payload, organised by domain; import them from here."""

from amiflow_schemas.events.accounts import (
    AccountClosed,
    AccountOpened,
    AccountSettingsChanged,
    MeterLinkedToAccount,
    MeterUnlinkedFromAccount,
)
from amiflow_schemas.events.alarms import AlarmAcknowledged, AlarmCleared, AlarmRaised
from amiflow_schemas.events.audit import AuditRecorded
from amiflow_schemas.events.billing import (
    AdjustmentPosted,
    BalanceDepleted,
    BalanceLow,
    BalanceRestored,
    ChargeApplied,
    DailySettled,
    PaymentReceived,
    RecurringChargePosted,
    RefundIssued,
    SubsidyGranted,
)
from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandCancelled,
    CommandCompleted,
    CommandConfirmed,
    CommandDispatched,
    CommandEscalated,
    CommandExpired,
    CommandFailed,
    CommandProposed,
    CommandRequested,
    CommandScheduled,
    RelayCommandIssued,
    ValveCommandIssued,
)
from amiflow_schemas.events.devices import DeviceStatusReported, FrameRejected
from amiflow_schemas.events.notifications import NotificationSent
from amiflow_schemas.events.readings import (
    ReadingCorrected,
    ReadingReceived,
    ReadingValidated,
    RegisterValue,
)
from amiflow_schemas.events.registry import (
    GatewayDefined,
    MeterDefined,
    MeterReplaced,
    SimCardDefined,
)
from amiflow_schemas.events.tariffs import TariffPublished

__all__ = [
    "AccountClosed",
    "AccountOpened",
    "AccountSettingsChanged",
    "AdjustmentPosted",
    "AlarmAcknowledged",
    "AlarmCleared",
    "AlarmRaised",
    "AuditRecorded",
    "BalanceDepleted",
    "BalanceLow",
    "BalanceRestored",
    "ChargeApplied",
    "CommandAcknowledged",
    "CommandCancelled",
    "CommandCompleted",
    "CommandConfirmed",
    "CommandDispatched",
    "CommandEscalated",
    "CommandExpired",
    "CommandFailed",
    "CommandProposed",
    "CommandRequested",
    "CommandScheduled",
    "DailySettled",
    "DeviceStatusReported",
    "FrameRejected",
    "GatewayDefined",
    "MeterDefined",
    "MeterLinkedToAccount",
    "MeterReplaced",
    "MeterUnlinkedFromAccount",
    "NotificationSent",
    "PaymentReceived",
    "ReadingCorrected",
    "ReadingReceived",
    "ReadingValidated",
    "RecurringChargePosted",
    "RefundIssued",
    "RegisterValue",
    "RelayCommandIssued",
    "SimCardDefined",
    "SubsidyGranted",
    "TariffPublished",
    "ValveCommandIssued",
]
