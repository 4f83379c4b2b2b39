"""The words and number formats of a bill in Chinese and English: a fixed table, not translation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from amiflow_schemas.events.billing import PaymentChannel
from amiflow_schemas.primitives import Unit, Utility

from billing.statements.model import BillingMonth, ChargeBasis, ChargeLine, CustomerKind, LedgerLineKind
from billing.statements.values import require_money


class Language(StrEnum):
    """A bill's language, as a BCP 47 tag (also the HTML lang attribute)."""

    ZH_CN = "zh-CN"
    EN = "en"


# key: (English, Chinese). Enum members are keyed "<kind>.<value>"; the tests check every
# member has both words, so a new channel or utility cannot print a raw code on a bill.
_WORDS: dict[str, tuple[str, str]] = {
    "statement": ("Monthly statement", "月度账单"),
    "account": ("Account", "账户"),
    "customer": ("Customer", "客户"),
    "customer_kind": ("Customer type", "客户类型"),
    "address": ("Address", "地址"),
    "month": ("Billing month", "账期"),
    "currency": ("Currency", "币种"),
    "time_zone": ("Time zone", "时区"),
    "summary": ("Account summary", "账户概要"),
    "opening_balance": ("Opening balance", "期初余额"),
    "closing_balance": ("Closing balance", "期末余额"),
    "payments": ("Payments", "缴费记录"),
    "charges": ("Charges", "费用明细"),
    "other_lines": ("Adjustments, subsidies, refunds and recurring charges", "调整、补贴、退款及周期性费用"),
    "other_total": ("Other ledger entries", "其他账目"),
    "consumption": ("Consumption", "用量"),
    "daily_consumption": ("Daily consumption", "每日用量"),
    "chart_note": ("Each service is drawn to the scale of its own highest day.",
                   "各项服务按其当月最高日用量分别缩放。"),
    "peak_day": ("highest day", "最高日"),
    "none": ("None this month.", "本月无记录。"),
    "date": ("Date", "日期"),
    "time": ("Time", "时间"),
    "channel": ("Channel", "渠道"),
    "transaction_id": ("Transaction ID", "交易号"),
    "amount": ("Amount", "金额"),
    "service": ("Service", "服务"),
    "item": ("Item", "项目"),
    "quantity": ("Quantity", "数量"),
    "unit": ("Unit", "单位"),
    "unit_price": ("Unit price", "单价"),
    "kind": ("Type", "类型"),
    "description": ("Description", "说明"),
    "subtotal": ("Subtotal", "小计"),
    "total": ("Total", "合计"),
    "count": ("Number of payments", "笔数"),
    "customer_group": ("Customer group", "客户分组"),
    "balance": ("Balance", "余额"),
    "depleted_on": ("Depleted on", "欠费日期"),
    "days_in_arrears": ("Days in arrears", "欠费天数"),
    "last_payment_on": ("Last payment on", "最近缴费日期"),
    "last_payment_amount": ("Last payment amount", "最近缴费金额"),
    "daily_collections": ("Daily collections", "每日收费"),
    "arrears": ("Arrears", "欠费"),
    "consumption_by_group": ("Consumption by group", "分组用量"),
    "utility.water": ("Water", "水"),
    "utility.electricity": ("Electricity", "电"),
    "utility.gas": ("Gas", "燃气"),
    "utility.heat": ("Heat", "热"),
    "unit.m3": ("m³", "立方米"),
    "unit.kWh": ("kWh", "千瓦时"),
    "unit.MWh": ("MWh", "兆瓦时"),
    "unit.GJ": ("GJ", "吉焦"),
    "unit.kvarh": ("kvarh", "千乏时"),
    "unit.day": ("days", "天"),
    "channel.wechat_pay": ("WeChat Pay", "微信支付"),
    "channel.alipay": ("Alipay", "支付宝"),
    "channel.bank": ("Bank", "银行"),
    "channel.cash": ("Cash", "现金"),
    "channel.operator": ("Service counter", "营业厅"),
    "customer_kind.household": ("Household", "居民"),
    "customer_kind.merchant": ("Merchant", "商户"),
    "customer_kind.room": ("Room", "房间"),
    "ledger.adjustment": ("Adjustment", "调整"),
    "ledger.subsidy": ("Subsidy", "补贴"),
    "ledger.refund": ("Refund", "退款"),
    "ledger.recurring_charge": ("Recurring charge", "周期性费用"),
    "basis.flat": ("Standard rate", "标准单价"),
    "basis.fixed_daily": ("Meter service fee (daily)", "每日表计服务费"),
    # DL/T 645 forward active energy per tariff register, DIs 00010100..00010400.
    "register.T1": ("sharp", "尖"),
    "register.T2": ("peak", "峰"),
    "register.T3": ("flat", "平"),
    "register.T4": ("valley", "谷"),
}

_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")


def word(key: str, language: Language) -> str:
    """The label ``key`` in ``language``; a missing key is a bug, so it raises KeyError."""
    english, chinese = _WORDS[key]
    return chinese if language is Language.ZH_CN else english


def keys() -> frozenset[str]:
    """Every label key the table holds."""
    return frozenset(_WORDS)


def utility_name(utility: Utility, language: Language) -> str:
    return word(f"utility.{utility.value}", language)


def unit_name(unit: Unit | None, language: Language) -> str:
    """A unit's symbol or word; None is the day count of a fixed daily fee."""
    return word(f"unit.{unit.value if unit is not None else 'day'}", language)


def channel_name(channel: PaymentChannel, language: Language) -> str:
    return word(f"channel.{channel.value}", language)


def customer_kind_name(kind: CustomerKind, language: Language) -> str:
    return word(f"customer_kind.{kind.value}", language)


def ledger_kind_name(kind: LedgerLineKind, language: Language) -> str:
    return word(f"ledger.{kind.value}", language)


def charge_item(line: ChargeLine, language: Language) -> str:
    """What a charge line prices: "Tier 2", "T2 peak", "Meter service fee (daily)" …"""
    if line.basis is ChargeBasis.TIER:
        return f"第{line.tier}阶梯" if language is Language.ZH_CN else f"Tier {line.tier}"
    if line.basis is ChargeBasis.TIME_OF_USE:
        register = line.register or ""
        if f"register.{register}" not in _WORDS:
            return register
        period = word(f"register.{register}", language)
        return f"{period}时段 ({register})" if language is Language.ZH_CN else f"{register} {period}"
    return word(f"basis.{line.basis.value}", language)


def month_title(month: BillingMonth, language: Language) -> str:
    """"July 2026" or "2026年7月"."""
    if language is Language.ZH_CN:
        return f"{month.year}年{month.month}月"
    return f"{_MONTHS_EN[month.month - 1]} {month.year}"


def money(amount: Decimal, currency: str) -> str:
    """Two decimals, thousands grouped, then the currency: "1,234.50 CNY"."""
    require_money(amount, "amount")  # formatting would round a sub-cent amount half-even
    return f"{_unsigned_zero(amount):,.2f} {currency}"


def quantity(value: Decimal) -> str:
    """A quantity or a unit price exactly as given, never in exponent notation."""
    return f"{_unsigned_zero(value):,f}"


def _unsigned_zero(value: Decimal) -> Decimal:
    # Decimal arithmetic can yield -0.00, which a customer would read as a debt.
    return value.copy_abs() if value.is_zero() else value


def page_number(number: int, language: Language) -> str:
    """"Page 2" or "第 2 页"."""
    return f"第 {number} 页" if language is Language.ZH_CN else f"Page {number}"


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """An instant as the tenant's wall clock, to the minute."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
