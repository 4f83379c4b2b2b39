"""Pulse counters: a count of pulses times the pulse weight is the register, exactly."""

from __future__ import annotations

from decimal import Decimal

from ingest.core.protocols.mapping import RegisterReading
from ingest.core.protocols.profile import PulseSettings


def pulse_total(count: int, weight: Decimal) -> Decimal:
    """``count`` pulses of ``weight`` each (e.g. 1234 x 0.01 m3 = 12.34 m3)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"a pulse count is a whole number of zero or more, not {count!r}")
    if not isinstance(weight, Decimal) or not weight.is_finite() or weight <= 0:
        raise ValueError(f"a pulse weight is a positive finite Decimal, not {weight!r}")
    return count * weight


def pulse_register(count: int, settings: PulseSettings) -> RegisterReading:
    """The register a pulse counter's count stands for, under its profile."""
    return RegisterReading(settings.register, pulse_total(count, settings.weight), settings.unit)
