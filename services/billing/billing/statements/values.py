"""What a bill accepts as money, quantities, instants and labels; each check raises on refusal."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation

_CURRENCY = re.compile(r"^[A-Z]{3}$")
CENT = Decimal("0.01")


def is_money(value: object) -> bool:
    """True for a finite Decimal of at most two decimal places (cents): what a bill can print."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return False
    try:
        return value == value.quantize(CENT)
    except InvalidOperation:  # more digits than the context holds: no bill prints that
        return False


def require_money(value: object, name: str) -> None:
    """Refuse a float, an int or sub-cent amount: the printed bill must add up to the ledger."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}")
    if not is_money(value):
        raise ValueError(f"{name} {value} is not a whole number of cents")


def require_decimal(value: object, name: str) -> None:
    """Refuse anything but a finite Decimal (a quantity or a unit price may have more places)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal, got {value!r}")


def require_aware(moment: datetime, name: str) -> None:
    """Refuse a naive datetime: the local day it falls on would depend on the server's zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def require_currency(code: str) -> None:
    """Refuse anything but an ISO 4217 alphabetic code."""
    if not _CURRENCY.match(code):
        raise ValueError(f"currency {code!r} is not an ISO 4217 code")


def require_text(value: str, name: str) -> None:
    """Refuse an empty or blank label that the bill would print as nothing."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be non-empty text")


def total(amounts: Iterable[Decimal]) -> Decimal:
    """The exact sum of some amounts (0.00 for none)."""
    return sum(amounts, Decimal("0.00"))
