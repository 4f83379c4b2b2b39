"""A virtual DL/T 645-2007 single-phase meter: tariff registers, instantaneous values, load switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from amiflow_schemas.events.commands import RelayAction
from amiflow_schemas.primitives import RelayState

from ingest.simulator.consumption import noise
from ingest.simulator.models import MeterSpec, SimMeter, register

# Time-of-use periods by local hour (a common Chinese split): T1 sharp, T2 peak, T3 flat, T4 valley.
TARIFF_HOURS: dict[str, frozenset[int]] = {
    "T1": frozenset({19, 20}),
    "T2": frozenset({8, 9, 10, 17, 18, 21}),
    "T3": frozenset({11, 12, 13, 14, 15, 16, 22}),
    "T4": frozenset({23, 0, 1, 2, 3, 4, 5, 6, 7}),
}
NOMINAL_VOLTAGE = Decimal(220)

# Run-status word bits the head-end reads (ingest.core.protocols.dlt645_items): word 1 bit 2 clock
# battery low; word 3 bit 4 relay open, bit 6 relay commanded to trip, bit 7 pre-trip alarm, bit 12
# keep-power.
CLOCK_BATTERY_LOW = 1 << 2
RELAY_OPEN, RELAY_TRIP_COMMANDED, PRE_TRIP_ALARM, KEEP_POWER = 1 << 4, 1 << 6, 1 << 7, 1 << 12


@dataclass(frozen=True)
class EnergyReading:
    """Forward active energy per tariff, kWh, as the registers show it; the total is their sum."""

    tariffs: tuple[Decimal, Decimal, Decimal, Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.tariffs, Decimal(0))


@dataclass(frozen=True)
class Instant:
    """Instantaneous values of phase A."""

    voltage: Decimal  # V, XXX.X
    current: Decimal  # A, XXX.XXX
    power: Decimal  # kW, XX.XXXX


class RelayRefused(Exception):
    """The meter will not switch (keep-power protects the supply)."""


class ElectricityMeter(SimMeter):
    """Obeys relay control C=1C; a tripped or close-allowed relay stops the registers."""

    def __init__(self, spec: MeterSpec, tz: ZoneInfo) -> None:
        super().__init__(spec, tz)
        self.relay = RelayState.CONNECTED
        self.keep_power = False
        self.alarm = False

    def channels(self) -> tuple[frozenset[int] | None, ...]:
        return tuple(TARIFF_HOURS.values())

    def energy(self, at: datetime) -> EnergyReading:
        shares = [sum((self.spec.curve.hourly[h] for h in hours), Decimal(0)) for hours in TARIFF_HOURS.values()]
        t1, t2, t3, t4 = (register(self.spec.initial * share + self.used(at, hours))
                          for share, hours in zip(shares, TARIFF_HOURS.values(), strict=True))
        return EnergyReading((t1, t2, t3, t4))

    def instant(self, at: datetime) -> Instant:
        voltage = (NOMINAL_VOLTAGE * noise(self.meter_id + ":volt", at, 970, 1030)).quantize(Decimal("0.1"))
        if self.relay is not RelayState.CONNECTED:
            return Instant(voltage, Decimal("0.000"), Decimal("0.0000"))
        power = (self.spec.curve.rate(at) * noise(self.meter_id + ":load", at)).quantize(Decimal("0.0001"))
        return Instant(voltage, (power * 1000 / voltage).quantize(Decimal("0.001")), power)

    def status_word(self, number: int) -> int:
        """Run-status word 1..7; words other than 1 and 3 are all clear."""
        if number == 1:
            return CLOCK_BATTERY_LOW if self.battery_low else 0
        if number != 3:
            return 0
        word = 0 if self.relay is RelayState.CONNECTED else RELAY_OPEN
        word |= RELAY_TRIP_COMMANDED if self.relay is RelayState.DISCONNECTED else 0
        return word | (PRE_TRIP_ALARM if self.alarm else 0) | (KEEP_POWER if self.keep_power else 0)

    def operate_relay(self, action: RelayAction, at: datetime) -> None:
        """Obey one N1 command; RelayRefused when keep-power forbids a trip."""
        if action is RelayAction.TRIP:
            if self.keep_power:
                raise RelayRefused("keep-power is on")
            self.relay = RelayState.DISCONNECTED
            self.cut_supply(at)
        elif action is RelayAction.CLOSE_ALLOWED:
            if self.relay is RelayState.DISCONNECTED:  # the customer must still press the button
                self.relay = RelayState.CLOSE_ALLOWED
        elif action is RelayAction.CLOSE_DIRECT:
            self._connect(at)
        elif action in (RelayAction.ALARM, RelayAction.ALARM_RELEASE):
            self.alarm = action is RelayAction.ALARM
        else:
            self.keep_power = action is RelayAction.KEEP_POWER
            if self.keep_power:
                self._connect(at)  # keep-power guarantees supply

    def press_button(self, at: datetime) -> bool:
        """The customer presses the meter's button: closes a close-allowed relay."""
        if self.relay is not RelayState.CLOSE_ALLOWED:
            return False
        self._connect(at)
        return True

    def _connect(self, at: datetime) -> None:
        self.relay = RelayState.CONNECTED
        self.restore_supply(at)
