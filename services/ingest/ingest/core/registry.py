"""The device registry's model: meters, gateways and SIM cards, and what a change produces.

Pure. A decision (registry_meters, registry_network) takes the current state and the part of the
registry around it (a Topology), checks the change, and returns the new states with the events
that announce them; the handler loads, persists and stages. Nothing here reads a database, a
clock or the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TypeAlias, TypeVar
from uuid import UUID

from amiflow_schemas import Envelope, EventPayload, new_envelope
from amiflow_schemas.events.registry import (
    DeviceKind,
    DiByteOrder,
    GatewayDefined,
    GatewayKind,
    MaintenanceState,
    MeterDefined,
    MeterReplaced,
    MeterStatus,
    RegistryChange,
    ScheduleKind,
    SimCardAspect,
    SimCardDefined,
    registry_key,
)
from amiflow_schemas.primitives import Unit, Utility

PRODUCER = "ingest"
MAX_KEY_CHARS = 128  # the envelope key is an Identifier

T = TypeVar("T")

RegistryEvent: TypeAlias = MeterDefined | MeterReplaced | GatewayDefined | SimCardDefined


class RegistryRefused(ValueError):
    """A change the registry will not make; ``reasons`` lists every problem found."""

    def __init__(self, *reasons: str) -> None:
        self.reasons = tuple(dict.fromkeys(reasons))  # one check may find what another did
        super().__init__("; ".join(self.reasons))


class RegistryConflict(RegistryRefused):
    """A change that contradicts what the registry holds: an id, address or binding already taken."""


class DeviceNotFound(LookupError):
    """No device with that id in the caller's tenant."""


@dataclass(frozen=True)
class ReadSchedule:
    """When the read scheduler polls a meter; ``at`` is the tenant's wall-clock time (daily only)."""

    kind: ScheduleKind
    at: time | None = None
    jitter_s: int = 0


@dataclass(frozen=True)
class Location:
    latitude: Decimal
    longitude: Decimal


@dataclass(frozen=True)
class MeterGroups:
    building: str | None = None
    customer_type: str | None = None
    district_metered_area: str | None = None


@dataclass(frozen=True)
class MeterDetails:
    """What an operator states about a meter; its lifecycle the registry keeps itself."""

    utility: Utility
    profile: str
    bus_address: str
    unit: Unit
    multiplier: Decimal = Decimal(1)
    dial_count: int | None = None
    installation_date: date | None = None
    installation_reading: Decimal | None = None
    premise: str | None = None
    room: str | None = None
    location: Location | None = None
    groups: MeterGroups = MeterGroups()
    di_order: DiByteOrder | None = None
    schedule: ReadSchedule | None = None
    gateway_id: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Removal:
    removed_at: datetime
    reading: Decimal | None
    replaced_by: str | None = None


@dataclass(frozen=True)
class Meter:
    tenant_id: str
    meter_id: str
    details: MeterDetails
    revision: int = 1
    status: MeterStatus = MeterStatus.ACTIVE
    installed_at: datetime | None = None  # when the installation reading was taken, if known
    replaces_meter_id: str | None = None
    removal: Removal | None = None


@dataclass(frozen=True)
class GatewayDetails:
    kind: GatewayKind
    registration_id: str | None = None
    model: str | None = None
    firmware: str | None = None
    parent_gateway_id: str | None = None
    channel: str | None = None
    maintenance: MaintenanceState = MaintenanceState.IN_SERVICE


@dataclass(frozen=True)
class Gateway:
    tenant_id: str
    gateway_id: str
    details: GatewayDetails
    revision: int = 1


@dataclass(frozen=True)
class SimCardDetails:
    imsi: str | None = None
    msisdn: str | None = None
    carrier: str | None = None
    data_plan: str | None = None
    quota_bytes: int | None = None
    used_bytes: int | None = None
    expires_on: date | None = None
    gateway_id: str | None = None


@dataclass(frozen=True)
class SimCard:
    tenant_id: str
    iccid: str
    details: SimCardDetails
    revision: int = 1


@dataclass(frozen=True)
class SimCardRevision:
    """A row of a SIM card's append-only history: its state after a card, number or plan change."""

    card: SimCard
    change: RegistryChange
    changed: tuple[SimCardAspect, ...]
    recorded_at: datetime


@dataclass(frozen=True)
class RegistryUpdate:
    """What a decision changes: new device states, SIM history rows, and the events announcing them."""

    meters: tuple[Meter, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    sim_cards: tuple[SimCard, ...] = ()
    sim_history: tuple[SimCardRevision, ...] = ()
    events: tuple[RegistryEvent, ...] = ()

    def __add__(self, later: RegistryUpdate) -> RegistryUpdate:
        """Both updates in order; a device changed in both keeps only its later state."""
        return combined([self, later])


def combined(updates: Iterable[RegistryUpdate]) -> RegistryUpdate:
    """One update doing all of ``updates`` in order; each device keeps only its last state."""
    updates = list(updates)
    return RegistryUpdate(
        meters=_last_per_id((m for u in updates for m in u.meters), lambda m: m.meter_id),
        gateways=_last_per_id((g for u in updates for g in u.gateways), lambda g: g.gateway_id),
        sim_cards=_last_per_id((c for u in updates for c in u.sim_cards), lambda c: c.iccid),
        sim_history=tuple(h for u in updates for h in u.sim_history),
        events=tuple(e for u in updates for e in u.events),
    )


def _last_per_id(items: Iterable[T], id_of: Callable[[T], str]) -> tuple[T, ...]:
    latest: dict[str, T] = {}
    for item in items:
        latest.pop(id_of(item), None)  # re-inserted, so the order is that of the last change
        latest[id_of(item)] = item
    return tuple(latest.values())


@dataclass(frozen=True)
class _Place:
    gateway_id: str
    root_id: str
    bus_address: str


@dataclass
class Topology:
    """The part of the registry a change is checked against; the handler loads what it needs.

    Bus addresses are unique behind a root gateway (a DTU or concentrator with its collectors),
    because the root is what sees the replies and routes them by address.
    """

    gateways: dict[str, Gateway] = field(default_factory=dict)
    registrations: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (tenant, gateway), any tenant
    cards_in: dict[str, SimCard] = field(default_factory=dict)  # gateway id -> the card bound to it
    _places: dict[str, _Place] = field(default_factory=dict)  # active meter id -> where it hangs
    _by_address: dict[tuple[str, str], str] = field(default_factory=dict)  # (root, address) -> meter id
    _meters_on: dict[str, int] = field(default_factory=dict)  # gateway id -> active meters on it
    _card_in: dict[str, str] = field(default_factory=dict)  # iccid -> gateway id

    def root_of(self, gateway_id: str) -> str:
        gateway = self.gateways.get(gateway_id)
        parent = gateway.details.parent_gateway_id if gateway else None
        return parent or gateway_id

    def meter_at(self, gateway_id: str, bus_address: str) -> str | None:
        """The active meter with this address behind the root of ``gateway_id``, if any."""
        return self._by_address.get((self.root_of(gateway_id), bus_address))

    def meters_on(self, gateway_id: str) -> int:
        return self._meters_on.get(gateway_id, 0)

    def children_of(self, gateway_id: str) -> list[Gateway]:
        return [g for g in self.gateways.values() if g.details.parent_gateway_id == gateway_id
                and g.details.maintenance is not MaintenanceState.RETIRED]

    def place(self, meter: Meter) -> None:
        """Record where ``meter`` now hangs (nowhere once removed)."""
        old = self._places.pop(meter.meter_id, None)
        if old is not None:
            self._by_address.pop((old.root_id, old.bus_address), None)
            self._meters_on[old.gateway_id] -= 1
        gateway_id = meter.details.gateway_id
        if meter.status is MeterStatus.ACTIVE and gateway_id is not None:
            spot = _Place(gateway_id, self.root_of(gateway_id), meter.details.bus_address)
            self._places[meter.meter_id] = spot
            self._by_address[(spot.root_id, spot.bus_address)] = meter.meter_id
            self._meters_on[gateway_id] = self._meters_on.get(gateway_id, 0) + 1

    def add_gateway(self, gateway: Gateway) -> None:
        previous = self.gateways.get(gateway.gateway_id)
        self.gateways[gateway.gateway_id] = gateway
        owner = (gateway.tenant_id, gateway.gateway_id)
        old_registration = previous.details.registration_id if previous else None
        if old_registration is not None and self.registrations.get(old_registration) == owner:
            del self.registrations[old_registration]
        if gateway.details.registration_id is not None:
            self.registrations[gateway.details.registration_id] = owner

    def bind(self, card: SimCard) -> None:
        """Record which gateway ``card`` is in now (none once taken out)."""
        previous = self._card_in.pop(card.iccid, None)
        if previous is not None and self.cards_in.get(previous, card).iccid == card.iccid:
            del self.cards_in[previous]
        if card.details.gateway_id is not None:
            self.cards_in[card.details.gateway_id] = card
            self._card_in[card.iccid] = card.details.gateway_id

    def absorb(self, update: RegistryUpdate) -> None:
        """Fold an accepted change in, so the next row of an import is checked against it."""
        for gateway in update.gateways:
            self.add_gateway(gateway)
        for meter in update.meters:
            self.place(meter)
        for card in update.sim_cards:
            self.bind(card)


def device_key(tenant_id: str, kind: DeviceKind, device_id: str) -> str:
    """The registry topic key; refused when tenant and id together exceed the key's 128 characters."""
    key = registry_key(tenant_id, kind, device_id)
    if len(key) > MAX_KEY_CHARS:
        raise RegistryRefused(f"tenant and {kind.value} id together are {len(key) - 2 - len(kind.value)} "
                              f"characters; the registry key allows {MAX_KEY_CHARS - 2 - len(kind.value)}")
    return key


def registry_envelopes(tenant_id: str, update: RegistryUpdate, event_ids: Iterator[UUID],
                       now: datetime) -> list[Envelope[EventPayload]]:
    """The update's events in envelopes keyed by device; one change shares one correlation id."""
    envelopes: list[Envelope[EventPayload]] = []
    for payload in update.events:
        event_id = next(event_ids)
        correlation = envelopes[0].event_id if envelopes else event_id
        envelopes.append(new_envelope(payload, event_id=event_id, tenant_id=tenant_id,
                                      key=payload.device_key,
                                      occurred_at=now, recorded_at=now, producer=PRODUCER,
                                      correlation_id=correlation))
    return envelopes
