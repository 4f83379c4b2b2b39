"""A small harness for the commands core: the state an adapter keeps, driven only by core functions.

``Desk`` keeps commands by id, device states by id and the account's supply intent, applies
every Transition (releasing commands queued after one that ended), and collects what would be
published. It is also the shortest description of what the adapter has to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from amiflow_schemas.events.billing import AccountMeter, BalanceDepleted, BalanceRestored
from amiflow_schemas.events.commands import (
    CommandAcknowledged,
    CommandKind,
    CommandOrigin,
    CommandPriority,
    CommandReason,
    CommandRequested,
)
from amiflow_schemas.events.devices import DeviceStatusReported
from amiflow_schemas.payload import EventPayload
from amiflow_schemas.primitives import RelayState, Utility, ValveState
from commands.core.capabilities import Device
from commands.core.confirmation import acknowledge, confirm_from_status
from commands.core.cutoff import DeviceContext, SupplyDecision, SupplySituation, carry_out, decide_on_balance
from commands.core.devices import DeviceState, observe_command, observe_status
from commands.core.intake import Accepted, submit
from commands.core.lifecycle import LifecycleSettings, release
from commands.core.model import Command, Refusal, Transition
from commands.core.policy import AccountExemption, CutOffPolicy
from commands.core.supply import AccountSupply
from commands.core.timers import on_timer

SH = ZoneInfo("Asia/Shanghai")
TENANT = "t1"
ACCOUNT = "ACC-0001"
WATER = Device(device_id="WM-000012345678", utility=Utility.WATER, profile="cjt188-water-2004", active=True)
ELECTRIC = Device(device_id="EM-123456789012", utility=Utility.ELECTRICITY, profile="dlt645-single-phase",
                  active=True)
METERS = (AccountMeter(meter_id=WATER.device_id, utility=Utility.WATER),
          AccountMeter(meter_id=ELECTRIC.device_id, utility=Utility.ELECTRICITY))
CUT_ELECTRICITY = CutOffPolicy(policy_id="cut-electricity-not-water", cut_utilities=frozenset({Utility.ELECTRICITY}))
SETTINGS = LifecycleSettings()
MINUTE = timedelta(minutes=1)
E = TypeVar("E", bound=EventPayload)


def depleted(at: datetime, **changes: Any) -> BalanceDepleted:
    """B2's depletion: balance 0.30 → -0.50 with credit limit 0, on the unified account."""
    return BalanceDepleted(account_id=ACCOUNT, balance=Decimal("-0.50"), credit_limit=Decimal(0), currency="CNY",
                           depleted_at=at, meters=METERS, **changes)


def restored(at: datetime) -> BalanceRestored:
    """B3's payment of 50.00."""
    return BalanceRestored(account_id=ACCOUNT, balance=Decimal("49.50"), restore_threshold=Decimal(0),
                           currency="CNY", restored_at=at, meters=METERS)


def operator_request(device_id: str, kind: CommandKind, now: datetime, **changes: Any) -> CommandRequested:
    """A console request by operator op-7 with a reason."""
    facts: dict[str, Any] = {
        "command_id": uuid4(), "device_id": device_id, "kind": kind, "parameter": None,
        "reason": CommandReason.OPERATOR, "origin": CommandOrigin.OPERATOR, "requested_by": "op-7",
        "note": "customer called: check the supply", "rule_id": None, "account_id": None, "operation_id": None,
        "after_command_id": None, "batch_id": None, "idempotency_key": None, "priority": CommandPriority.NORMAL,
        "requested_at": now, "not_before": None, "holds": (), "expires_at": now + timedelta(hours=2)}
    return CommandRequested(**{**facts, **changes})


def status(device_id: str, at: datetime, *, valve: ValveState | None = None,
           relay: RelayState | None = None) -> DeviceStatusReported:
    """A read-back as ingest reports it."""
    utility = Utility.WATER if valve is not None else Utility.ELECTRICITY
    return DeviceStatusReported(meter_id=device_id, utility=utility, reported_at=at, valve=valve, relay=relay,
                                battery=None, alarms=(), status_word_hex=None, gateway_id="DTU-1")


class Desk:
    """The commands service's state, as its adapter would keep it (plus the builders tests use)."""

    water, electric, account, zone, tenant = WATER, ELECTRIC, ACCOUNT, SH, TENANT
    depleted, restored = staticmethod(depleted), staticmethod(restored)
    status, operator_request = staticmethod(status), staticmethod(operator_request)

    def __init__(self, *devices: Device, policy: CutOffPolicy = CUT_ELECTRICITY,
                 settings: LifecycleSettings = SETTINGS) -> None:
        self.devices = {d.device_id: d for d in (devices or (WATER, ELECTRIC))}
        self.policy, self.settings = policy, settings
        self.commands: dict[UUID, Command] = {}
        self.states: dict[str, DeviceState] = {}
        self.supply: AccountSupply | None = None
        self.published: list[EventPayload] = []

    def take(self, transitions: Iterable[Transition], now: datetime) -> None:
        """Keep each transition's command and publish its events; release what waited for an ended command."""
        for t in transitions:
            before = self.commands.get(t.command.command_id)
            self.commands[t.command.command_id] = t.command
            self.states[t.command.device_id] = observe_command(self.states.get(t.command.device_id), t.command)
            self.published.extend(t.events)
            if before is not None and before.is_open and not t.command.is_open:
                self.take(release(t.command, list(self.commands.values()), now), now)

    def outstanding(self, device_id: str) -> tuple[Command, ...]:
        return tuple(c for c in self.commands.values() if c.device_id == device_id and c.is_open)

    def context(self, device_id: str) -> DeviceContext:
        return DeviceContext(self.devices.get(device_id), self.states.get(device_id), self.outstanding(device_id))

    def balance(self, event: BalanceDepleted | BalanceRestored, now: datetime,
                exemption: AccountExemption | None = None) -> SupplyDecision:
        """Decide on a balance event and carry the decision out."""
        situation = SupplySituation(self.policy, {m.meter_id: self.context(m.meter_id) for m in event.meters},
                                    SH, now, uuid4(), exemption)
        self.supply, decision = decide_on_balance(self.supply, event, situation)
        self.take(carry_out(decision, TENANT, now), now)
        return decision

    def submit(self, requested: CommandRequested, now: datetime, known: Command | None = None) -> Accepted | Refusal:
        result = submit(TENANT, requested, self.devices.get(requested.device_id),
                        self.outstanding(requested.device_id), known, now)
        if isinstance(result, Accepted):
            self.take(result.transitions, now)
        return result

    def tick(self, now: datetime) -> None:
        """Fire every open command's timer."""
        for command_id in [c.command_id for c in self.commands.values() if c.is_open]:
            current = self.commands[command_id]
            self.take([on_timer(current, self.states.get(current.device_id), now, self.settings)], now)

    def ack(self, command_id: UUID, at: datetime) -> None:
        command = self.commands[command_id]
        event = CommandAcknowledged(command_id=command_id, device_id=command.device_id, acknowledged_at=at,
                                    attempt=1, gateway_id="DTU-1", reported_valve_state=None, reply_hex=None)
        self.take([acknowledge(command, event, self.states.get(command.device_id), self.settings)], at)

    def report(self, event: DeviceStatusReported, now: datetime) -> None:
        """A read-back: kept as the device's state, then offered to the device's open commands."""
        event_id = uuid4()
        self.states[event.meter_id] = observe_status(self.states.get(event.meter_id), event, event_id)
        for command_id in [c.command_id for c in self.outstanding(event.meter_id)]:
            current = self.commands[command_id]  # an earlier step may have released it
            self.take([confirm_from_status(current, event, event_id, now, self.settings)], now)

    def events(self, kind: type[E]) -> list[E]:
        return [e for e in self.published if isinstance(e, kind)]

    def only(self, kind: CommandKind) -> Command:
        found = [c for c in self.commands.values() if c.kind is kind]
        assert len(found) == 1, found
        return found[0]


@pytest.fixture
def desk() -> Desk:
    """A unified account's water and electricity meters, policy "cut electricity, not water"."""
    return Desk()


@pytest.fixture
def make_desk() -> type[Desk]:
    """Build a desk with other devices or policy: ``make_desk(WATER, policy=...)``."""
    return Desk
