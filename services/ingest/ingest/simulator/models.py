"""Virtual meters: pure state, deterministic from their spec, with the time always passed in.

A meter keeps what a real one keeps: registers (from its usage curve), a clock that may drift, a
battery flag, and a valve or load switch. A closed valve or an open relay stops the registers; what
the household would have used meanwhile is withheld, never caught up when supply returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import ValveAction
from amiflow_schemas.primitives import Unit, Utility, ValveState

from ingest.core.protocols import MeterProfile, WallClock
from ingest.profiles import load_profile
from ingest.simulator.consumption import UsageCurve, noise

CENT = Decimal("0.01")
# kWh of heat that one m3 of water carries per kelvin it cools by (4.186 kJ/kg/K x 1000 kg / 3600 s).
HEAT_PER_M3_K = Decimal("1.163")


class MeterKind(StrEnum):
    """The meter models the simulator can play."""

    WATER = "water"
    GAS = "gas"
    HEAT = "heat"
    ELECTRICITY = "electricity"


@dataclass(frozen=True)
class KindFacts:
    """What the registry and the wire need to know about a kind: profile, id code, utility, unit."""

    profile: str
    code: str
    utility: Utility
    unit: Unit


KINDS: dict[MeterKind, KindFacts] = {
    MeterKind.WATER: KindFacts("cjt188-water-2004", "WM", Utility.WATER, Unit.M3),
    MeterKind.GAS: KindFacts("cjt188-gas", "GM", Utility.GAS, Unit.M3),
    MeterKind.HEAT: KindFacts("cjt188-heat", "HM", Utility.HEAT, Unit.KWH),
    MeterKind.ELECTRICITY: KindFacts("dlt645-single-phase", "EM", Utility.ELECTRICITY, Unit.KWH),
}


class ValvePosition(StrEnum):
    """Where a valve stands; CJ/T 188 ST has no half-open code, so half open reports as open."""

    OPEN = "open"
    HALF_OPEN = "half_open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Traits:
    """What sets one meter apart from its neighbours."""

    leaking: bool = False
    battery_low: bool = False
    clock_drift_s: int = 0  # the meter clock's offset from true time
    pushes: bool = False  # sends 901F by itself instead of waiting to be polled


@dataclass(frozen=True)
class MeterSpec:
    """Everything the fleet decided about one meter, from the seed."""

    meter_id: str
    kind: MeterKind
    bus_address: str  # as printed on the nameplate
    curve: UsageCurve
    initial: Decimal  # the register at installation (m3, or kWh for electricity)
    traits: Traits = Traits()
    delta_t: Decimal = Decimal(20)  # heat meters: supply minus return temperature, K


def register(value: Decimal) -> Decimal:
    """A register as the meter shows it: XXXXXX.XX, cut off (a dial never rounds up)."""
    return value.quantize(CENT, rounding=ROUND_DOWN)


class SimMeter:
    """Identity, usage curve, clock and battery of a meter, and a supply that can be stopped."""

    def __init__(self, spec: MeterSpec, tz: ZoneInfo) -> None:
        self.spec = spec
        self.tz = tz
        self.profile: MeterProfile = load_profile(KINDS[spec.kind].profile)
        self._drift = timedelta(seconds=spec.traits.clock_drift_s)
        self._stopped_at: datetime | None = None
        self._withheld: dict[frozenset[int] | None, Decimal] = {}

    @property
    def meter_id(self) -> str:
        return self.spec.meter_id

    @property
    def bus_address(self) -> str:
        return self.spec.bus_address

    @property
    def battery_low(self) -> bool:
        return self.spec.traits.battery_low

    @property
    def drift(self) -> timedelta:
        """How far the meter clock is ahead of true time (negative: behind)."""
        return self._drift

    @property
    def supplied(self) -> bool:
        """False while a closed valve or an open relay stops consumption."""
        return self._stopped_at is None

    def clock(self, at: datetime) -> WallClock:
        """The meter's own wall clock at true time ``at``, to the second."""
        return WallClock.of((at + self._drift).astimezone(self.tz))

    def clock_time(self, at: datetime) -> datetime:
        """The meter clock as an aware datetime in the meter's zone (what the head-end decodes)."""
        return self.clock(at).aware(self.tz)

    def set_clock(self, wall: WallClock, at: datetime) -> None:
        """A time write or broadcast: from now on the clock reads ``wall`` at ``at``."""
        self._drift = wall.aware(self.tz) - at

    def channels(self) -> tuple[frozenset[int] | None, ...]:
        """The registers the curve feeds: everything (None), or local hours per tariff."""
        return (None,)

    def used(self, at: datetime, hours: frozenset[int] | None = None) -> Decimal:
        """Use since installation as the register counted it (stopped spells left out)."""
        if self._stopped_at is not None:
            at = min(at, self._stopped_at)
        return self.spec.curve.used(at, hours) - self._withheld.get(hours, Decimal(0))

    def cut_supply(self, at: datetime) -> None:
        if self._stopped_at is None:
            self._stopped_at = at

    def restore_supply(self, at: datetime) -> None:
        stopped = self._stopped_at
        if stopped is None:
            return
        at = max(at, stopped)
        for hours in self.channels():
            missed = self.spec.curve.used(at, hours) - self.spec.curve.used(stopped, hours)
            self._withheld[hours] = self._withheld.get(hours, Decimal(0)) + missed
        self._stopped_at = None

    def month_start(self, at: datetime) -> datetime:
        """True time of the last settlement day (the 1st, 00:00 on the meter clock)."""
        local = self.clock_time(at).replace(day=1, hour=0, minute=0, second=0)
        return local - self._drift


@dataclass(frozen=True)
class FlowReading:
    """What a water or gas meter's 901F reply carries."""

    total: Decimal  # m3
    settlement: Decimal  # m3 at the last settlement day
    clock: WallClock
    valve: ValveState
    battery_low: bool


@dataclass(frozen=True)
class HeatReading:
    """What a heat meter's 901F reply carries."""

    settlement_heat: Decimal  # kWh
    heat: Decimal  # kWh
    power: Decimal  # kW
    flow_rate: Decimal  # m3/h, 4 decimals
    volume: Decimal  # m3
    supply_c: Decimal
    return_c: Decimal
    working_hours: int
    clock: WallClock
    battery_low: bool


class Cjt188Meter(SimMeter):
    """A CJ/T 188 meter, with a motorised valve if its profile has one."""

    def __init__(self, spec: MeterSpec, tz: ZoneInfo) -> None:
        super().__init__(spec, tz)
        self.valve = ValvePosition.OPEN

    @property
    def has_valve(self) -> bool:
        return self.profile.cjt188 is not None and self.profile.cjt188.valve is not None

    @property
    def valve_state(self) -> ValveState:
        """The valve as ST reports it."""
        return ValveState.CLOSED if self.valve is ValvePosition.CLOSED else ValveState.OPEN

    def operate_valve(self, action: ValveAction | None, at: datetime) -> bool:
        """Obey an A017 command; False when this meter cannot (no valve, or a code it does not know)."""
        if not self.has_valve or action is None:
            return False
        if action is ValveAction.CLOSE:
            self.valve = ValvePosition.CLOSED
            self.cut_supply(at)
        elif action in (ValveAction.OPEN, ValveAction.HALF_OPEN):
            self.valve = ValvePosition.OPEN if action is ValveAction.OPEN else ValvePosition.HALF_OPEN
            self.restore_supply(at)
        # EXERCISE runs the valve to the far end and back against seizing: the position is unchanged.
        return True

    def _settled(self, at: datetime) -> Decimal:
        # Approximate when a stopped spell fell in this month; the field is informative, not a register.
        return max(Decimal(0), min(self.used(self.month_start(at)), self.used(at)))


class FlowMeter(Cjt188Meter):
    """A CJ/T 188 water or gas meter."""

    def reading(self, at: datetime) -> FlowReading:
        return FlowReading(register(self.spec.initial + self.used(at)), register(self.spec.initial + self._settled(at)),
                           self.clock(at), self.valve_state, self.battery_low)


class HeatMeter(Cjt188Meter):
    """A CJ/T 188 heat meter: heat is the volume through it times its temperature drop."""

    def reading(self, at: datetime) -> HeatReading:
        per_m3 = self.spec.delta_t * HEAT_PER_M3_K
        volume = self.spec.initial + self.used(at)
        flow_rate = (self.spec.curve.rate(at) * noise(self.meter_id + ":flow", at)).quantize(Decimal("0.0001"))
        supply = (Decimal(45) + self.spec.delta_t + noise(self.meter_id + ":supply", at, 0, 5000)).quantize(CENT)
        return HeatReading(
            settlement_heat=register((self.spec.initial + self._settled(at)) * per_m3), heat=register(volume * per_m3),
            power=(flow_rate * per_m3).quantize(CENT), flow_rate=flow_rate, volume=register(volume),
            supply_c=supply, return_c=supply - self.spec.delta_t,
            working_hours=max(0, (at - self.spec.curve.epoch) // timedelta(hours=1)),
            clock=self.clock(at), battery_low=self.battery_low)
