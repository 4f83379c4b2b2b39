"""A worked e-bill and report rows (a unified account, July 2026) for tests and for previewing renderers."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from amiflow_schemas.events.billing import PaymentChannel
from amiflow_schemas.primitives import Unit, Utility

from billing.statements.model import (
    Arrears,
    BillingMonth,
    ChargeBasis,
    ChargeLine,
    ConsumptionByGroup,
    CustomerKind,
    DailyCollections,
    DailyUsage,
    LedgerLine,
    LedgerLineKind,
    MonthlyStatement,
    Payment,
    StatementTotals,
)

SHANGHAI = timezone(timedelta(hours=8))
JULY_2026 = BillingMonth(2026, 7)

# Water: 8.000 m³ in tier 1 @ 5.00 and 2.500 m³ in tier 2 @ 7.00, plus a 0.10 daily meter fee.
# Electricity: the four DL/T 645 time-of-use registers. Posted amounts come from cumulative
# rounding (billing.md, rating step 4), so a line's amount is what the ledger took.
SAMPLE_CHARGES = (
    ChargeLine(Utility.WATER, ChargeBasis.TIER, Decimal("8.000"), Unit.M3, Decimal("5.00"), Decimal("40.00"), tier=1),
    ChargeLine(Utility.WATER, ChargeBasis.TIER, Decimal("2.500"), Unit.M3, Decimal("7.00"), Decimal("17.50"), tier=2),
    ChargeLine(Utility.WATER, ChargeBasis.FIXED_DAILY, Decimal(31), None, Decimal("0.10"), Decimal("3.10")),
    ChargeLine(Utility.ELECTRICITY, ChargeBasis.TIME_OF_USE, Decimal("12.00"), Unit.KWH, Decimal("1.0283"),
               Decimal("12.34"), register="T1"),
    ChargeLine(Utility.ELECTRICITY, ChargeBasis.TIME_OF_USE, Decimal("40.00"), Unit.KWH, Decimal("0.8483"),
               Decimal("33.93"), register="T2"),
    ChargeLine(Utility.ELECTRICITY, ChargeBasis.TIME_OF_USE, Decimal("60.00"), Unit.KWH, Decimal("0.5483"),
               Decimal("32.90"), register="T3"),
    ChargeLine(Utility.ELECTRICITY, ChargeBasis.TIME_OF_USE, Decimal("50.00"), Unit.KWH, Decimal("0.2983"),
               Decimal("14.92"), register="T4"),
)
SAMPLE_PAYMENT = Payment(datetime(2026, 7, 5, 10, 12, tzinfo=SHANGHAI), PaymentChannel.WECHAT_PAY,
                         "4200001234202607051234567890", Decimal("200.00"))
# billing.md R4: an estimate charged 15.00 re-rated to 10.00 (AdjustmentPosted -5.00) gives 5.00 back.
SAMPLE_ADJUSTMENT = LedgerLine(LedgerLineKind.ADJUSTMENT, datetime(2026, 7, 12, 0, 5, tzinfo=SHANGHAI),
                               "Water reading of 2026-07-09 re-rated: the estimate is replaced by the actual",
                               Decimal("5.00"))
SAMPLE_PROPERTY_FEE = LedgerLine(LedgerLineKind.RECURRING_CHARGE, datetime(2026, 7, 1, 0, 0, tzinfo=SHANGHAI),
                                 "Property fee, July 2026", Decimal("-30.00"))


def _daily(days: int, base: str, step: str, cycle: int, month_total: str) -> list[Decimal]:
    """A varying daily series whose last day takes the remainder, so the month adds up exactly."""
    series = [Decimal(base) + Decimal(step) * (day % cycle) for day in range(1, days)]
    return [*series, Decimal(month_total) - sum(series, Decimal(0))]


def sample_daily_usage(month: BillingMonth = JULY_2026) -> tuple[DailyUsage, ...]:
    """10.500 m³ of water and 162.00 kWh of electricity over every day of the month."""
    days = month.days()
    water = _daily(len(days), "0.300", "0.010", 7, "10.500")
    power = _daily(len(days), "4.80", "0.20", 5, "162.00")
    return tuple(
        usage
        for day, volume_m3, energy_kwh in zip(days, water, power, strict=True)
        for usage in (DailyUsage(day, Utility.WATER, volume_m3, Unit.M3),
                      DailyUsage(day, Utility.ELECTRICITY, energy_kwh, Unit.KWH))
    )


def sample_statement() -> MonthlyStatement:
    """Opening 30.00 + payment 200.00 + adjustment 5.00 - property fee 30.00 - charges 154.69 = 50.31 CNY."""
    return MonthlyStatement(
        tenant_name="Riverside Water & Power",
        account_id="ACC-000123",
        customer_name="Zhang Wei 张伟",
        customer_kind=CustomerKind.HOUSEHOLD,
        address="Building 3, Room 1502, 88 Binjiang Road",
        month=JULY_2026,
        currency="CNY",
        time_zone="Asia/Shanghai",
        opening_balance=Decimal("30.00"),
        closing_balance=Decimal("50.31"),
        payments=(SAMPLE_PAYMENT,),
        charges=SAMPLE_CHARGES,
        other_lines=(SAMPLE_PROPERTY_FEE, SAMPLE_ADJUSTMENT),
        daily_usage=sample_daily_usage(),
        totals=StatementTotals(payments=Decimal("200.00"), charges=Decimal("154.69"), other=Decimal("-25.00")),
    )


def sample_daily_collections() -> tuple[DailyCollections, ...]:
    return (
        DailyCollections(date(2026, 7, 5), PaymentChannel.WECHAT_PAY, 412, Decimal("38210.50"), "CNY"),
        DailyCollections(date(2026, 7, 5), PaymentChannel.ALIPAY, 233, Decimal("19876.05"), "CNY"),
        DailyCollections(date(2026, 7, 5), PaymentChannel.OPERATOR, 7, Decimal("1400.00"), "CNY"),
    )


def sample_arrears() -> tuple[Arrears, ...]:
    return (
        Arrears("ACC-000777", "李娜", Decimal("-12.47"), "CNY", date(2026, 7, 20), 11,
                date(2026, 6, 2), Decimal("100.00")),
        Arrears("ACC-000901", "Harbour Noodle Bar", Decimal("-0.30"), "CNY", date(2026, 7, 30), 1, None, None),
    )


def sample_consumption_by_group() -> tuple[ConsumptionByGroup, ...]:
    return (
        ConsumptionByGroup(Utility.WATER, "居民 residential", Decimal("18234.125"), Unit.M3,
                           Decimal("91170.63"), "CNY"),
        ConsumptionByGroup(Utility.ELECTRICITY, "商户 commercial", Decimal("50211.40"), Unit.KWH,
                           Decimal("42592.33"), "CNY"),
    )
