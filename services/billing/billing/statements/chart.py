"""Where the bars of the daily consumption chart go; the SVG and the PDF draw this same layout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from amiflow_schemas.primitives import Unit, Utility

from billing.statements.model import MonthlyStatement

SERVICE_COLOURS: dict[Utility, str] = {
    Utility.WATER: "#2b7bb9",
    Utility.ELECTRICITY: "#e09b00",
    Utility.GAS: "#6c8a3c",
    Utility.HEAT: "#c0392b",
}


@dataclass(frozen=True)
class Series:
    """One service in the chart. Units differ between services, so each has its own scale."""

    utility: Utility
    unit: Unit
    peak: Decimal  # the highest day of the month; its bar fills the plot height
    colour: str


@dataclass(frozen=True)
class Bar:
    """One service on one day; coordinates from the top-left corner, as in SVG."""

    utility: Utility
    quantity: Decimal
    colour: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class DayGroup:
    """The bars of one local day, side by side; a day without readings has no bars."""

    day: date
    x: float
    width: float
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class DailyChart:
    width: float
    height: float
    baseline: float  # y of the horizontal axis; day numbers go below it
    series: tuple[Series, ...]
    days: tuple[DayGroup, ...]  # every day of the month, in order


def lay_out_daily_chart(statement: MonthlyStatement, width: float = 720.0, height: float = 180.0) -> DailyChart:
    """Place one group of bars per day of the month, one bar per service that has usage."""
    usage = {(u.day, u.utility): u.quantity for u in statement.daily_usage}
    series = tuple(
        Series(utility, unit, max((max(q, Decimal(0)) for (_, u), q in usage.items() if u is utility)),
               SERVICE_COLOURS[utility])
        for utility, (_, unit) in statement.usage_by_utility().items()
    )
    margin, label_space = 4.0, 16.0
    baseline = height - label_space
    plot_height = baseline - margin
    days = statement.month.days()
    slot = (width - 2 * margin) / len(days)
    bar_width = slot * 0.8 / max(len(series), 1)
    groups = []
    for index, day in enumerate(days):
        x = margin + index * slot
        bars = []
        for position, line in enumerate(series):
            quantity = usage.get((day, line.utility))
            if quantity is None:
                continue
            # A day lowered by a late correction can be negative; it is drawn as no bar and
            # its exact value still appears in the bar's tooltip and the monthly total.
            share = float(quantity / line.peak) if quantity > 0 and line.peak > 0 else 0.0
            bar_height = plot_height * share
            bars.append(Bar(line.utility, quantity, line.colour, x + slot * 0.1 + position * bar_width,
                            baseline - bar_height, bar_width, bar_height))
        groups.append(DayGroup(day, x, slot, tuple(bars)))
    return DailyChart(width, height, baseline, series, tuple(groups))
