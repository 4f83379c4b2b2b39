"""Money arithmetic: exact Decimals, rounded only where billing.md says, half-up to the cent."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal(0)
# A time share of a span's consumption; the last share of a split takes the remainder, so the
# parts always add up to the span exactly whatever this quantum is.
SHARE_QUANTUM = Decimal("0.000000001")


def round_money(amount: Decimal) -> Decimal:
    """``amount`` rounded half-up to 0.01 (billing.md's round2)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def split_pro_rata(whole: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """``whole`` shared in proportion to ``weights``; the last share takes the remainder, so they add up."""
    total = sum(weights, ZERO)
    shares = [(whole * weight / total).quantize(SHARE_QUANTUM, rounding=ROUND_HALF_UP) for weight in weights[:-1]]
    return [*shares, whole - sum(shares, ZERO)]
