"""Which register of a reading is billed."""

from __future__ import annotations

from amiflow_schemas.events.readings import RegisterValue

BILLING_REGISTER = "total"


def billing_register(registers: tuple[RegisterValue, ...]) -> RegisterValue:
    """The register that is billed: `total`, else the first one the meter reported."""
    first = registers[0]
    if first.register == BILLING_REGISTER or len(registers) == 1:  # nearly every reading: nothing to look for
        return first
    return next((r for r in registers if r.register == BILLING_REGISTER), first)
