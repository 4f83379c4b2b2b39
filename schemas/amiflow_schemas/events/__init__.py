"""Every event payload, organised by domain; import them from here."""

from amiflow_schemas.events.alarms import AlarmAcknowledged, AlarmCleared, AlarmRaised
from amiflow_schemas.events.billing import (
    BalanceDepleted,
    BalanceLow,
    BalanceRestored,
    ChargeApplied,
    DailySettled,
    PaymentReceived,
)
from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandConfirmed,
    CommandExpired,
    CommandFailed,
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

__all__ = [
    "AlarmAcknowledged",
    "AlarmCleared",
    "AlarmRaised",
    "BalanceDepleted",
    "BalanceLow",
    "BalanceRestored",
    "ChargeApplied",
    "CommandAcknowledged",
    "CommandConfirmed",
    "CommandExpired",
    "CommandFailed",
    "DailySettled",
    "DeviceStatusReported",
    "FrameRejected",
    "GatewayDefined",
    "MeterDefined",
    "MeterReplaced",
    "NotificationSent",
    "PaymentReceived",
    "ReadingCorrected",
    "ReadingReceived",
    "ReadingValidated",
    "RegisterValue",
    "RelayCommandIssued",
    "SimCardDefined",
    "ValveCommandIssued",
]
