"""Register arithmetic: how a register's movement between two reads of one device is read (vee.md §4).

A register that went down is, in this order: a rollover through its modulus (only when the previous
read was near the top and the wrapped use is plausible), reverse flow (the device said so, or the
drop is small), or a misread (V7). Consumption follows the register's high-water mark, so water that
ran back and then forward again is not billed twice (T15: net 10 L billed, 15 L reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum

from vee.core.context import MeterDevice
from vee.core.rules import VeeParameters

ESTIMATE_QUANTUM = Decimal("0.000001")  # estimated registers keep sub-resolution digits; totals telescope


class Movement(StrEnum):
    """How a register moved between two reads of the same device."""

    FORWARD = "forward"
    ROLLOVER = "rollover"
    REVERSE_FLOW = "reverse_flow"
    MISREAD = "misread"


class Backflow(StrEnum):
    """Neptune E-CODER's backflow classes [NEP]."""

    JITTER = "jitter"  # at most one count back: the encoder's last digit, not water
    MINOR = "minor"
    MAJOR = "major"


@dataclass(frozen=True, slots=True)
class Step:
    """A read placed on its device's unwrapped register scale."""

    movement: Movement
    effective: Decimal  # register + wraps x modulus
    wraps: int
    dropped: Decimal  # register units the register went back (reverse flow only)


def rollover_plausible(previous: Decimal, register: Decimal, device: MeterDevice,
                       typical_use: Decimal | None, parameters: VeeParameters) -> bool:
    """A wrap is believed only near the top of the dials and when the wrapped use is plausible [CUR-ROLL]."""
    modulus = device.modulus
    if modulus is None:
        return False
    near_top = modulus - previous <= parameters.rollover_near_top_share * modulus
    wrapped_use = (register + modulus - previous) * device.multiplier
    plausible = typical_use is None or wrapped_use <= parameters.rollover_max_use_factor * typical_use
    return near_top and plausible


def reverse_flow_plausible(dropped: Decimal, device: MeterDevice, typical_use: Decimal | None,
                           parameters: VeeParameters, device_saw_it: bool) -> bool:
    """Backflow when the device flagged it, or the drop is within the interval's typical use.

    Without history only drops up to Neptune's minor band (100 counts) are believed: anything larger
    with nothing to compare it with is more likely a misread (our rule, vee.md T6 vs T15).
    """
    if device_saw_it:
        return True
    if typical_use is None:
        return dropped / device.resolution <= parameters.backflow_major_counts
    return dropped * device.multiplier <= parameters.backflow_max_use_factor * typical_use


def forward(last_effective: Decimal, wraps: int, register: Decimal, device: MeterDevice) -> Step | None:
    """The step of a register that did not go down, None when it did (then only ``classify`` can tell what
    happened). Most reads move forward, and this needs neither the rules nor the typical use."""
    effective = register + wraps * (device.modulus or Decimal(0))
    return Step(Movement.FORWARD, effective, wraps, Decimal(0)) if effective >= last_effective else None


def classify(last_effective: Decimal, wraps: int, register: Decimal, device: MeterDevice,
             typical_use: Decimal | None, parameters: VeeParameters, device_saw_reverse: bool,
             manual: bool = False) -> Step:
    """Where ``register`` lies on the device's unwrapped scale after a read at ``last_effective``.

    A manual value that goes down is never taken for reverse flow: the operator meant the register.
    """
    step = forward(last_effective, wraps, register, device)
    if step is not None:
        return step
    modulus = device.modulus or Decimal(0)
    effective = register + wraps * modulus
    previous = last_effective - wraps * modulus
    if rollover_plausible(previous, register, device, typical_use, parameters):
        return Step(Movement.ROLLOVER, effective + modulus, wraps + 1, Decimal(0))
    dropped = last_effective - effective
    if not manual and reverse_flow_plausible(dropped, device, typical_use, parameters, device_saw_reverse):
        return Step(Movement.REVERSE_FLOW, effective, wraps, dropped)
    return Step(Movement.MISREAD, effective, wraps, dropped)


def backflow_class(dropped: Decimal, device: MeterDevice, parameters: VeeParameters) -> Backflow:
    """Minor above one count and up to 100, major above [NEP]."""
    counts = dropped / device.resolution
    if counts <= parameters.backflow_jitter_counts:
        return Backflow.JITTER
    return Backflow.MINOR if counts <= parameters.backflow_major_counts else Backflow.MAJOR


def tidy(value: Decimal) -> Decimal:
    """A computed value without trailing zeros (502.200000 → 502.2), integers kept as integers."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def displayed_register(effective: Decimal, device: MeterDevice) -> Decimal:
    """What the dials show for an unwrapped register value."""
    modulus = device.modulus
    return effective % modulus if modulus is not None else effective


def open_ended_register(last_register: Decimal, average_daily_use: Decimal, days: Decimal,
                        device: MeterDevice) -> Decimal:
    """An E7 estimate as a register read: ADU to 2 dp x days / multiplier, truncated, added [CA-RND].

    Truncating to the register's resolution keeps the estimated chain monotonic and never ahead of
    what the meter can show (T8: 3.345 → 3.35 x 29 d = 97.15 kWh / 40 = 2.42875 → 2 → 1521 → 1523).
    """
    adu = average_daily_use.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    advance = (adu * days / device.multiplier).quantize(device.resolution, rounding=ROUND_DOWN)
    return last_register + advance


def sum_within_tolerance(register_delta: Decimal, interval_sum: Decimal, multiplier: Decimal,
                         parameters: VeeParameters) -> bool:
    """V13: the intervals add up to the register delta within 2 x multiplier [TX-Q]."""
    return abs(register_delta - interval_sum) <= parameters.sum_tolerance_multipliers * multiplier
