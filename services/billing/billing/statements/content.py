"""What a bill says in one language, as text cells; the HTML and PDF renderers only lay it out."""

from __future__ import annotations

from dataclasses import dataclass

from billing.statements.chart import DailyChart, lay_out_daily_chart
from billing.statements.labels import (
    Language,
    channel_name,
    charge_item,
    customer_kind_name,
    ledger_kind_name,
    local_time,
    money,
    month_title,
    quantity,
    unit_name,
    utility_name,
    word,
)
from billing.statements.model import MonthlyStatement
from billing.statements.reconcile import check_reconciles


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]
    emphasis: bool = False  # a subtotal, a total or the closing balance


@dataclass(frozen=True)
class Section:
    """One titled table of the bill; an empty one prints ``empty_text`` instead."""

    name: str  # a stable identifier, e.g. the HTML class: summary, payments, charges …
    heading: str
    headers: tuple[str, ...]  # none for a two-column list such as the summary
    rows: tuple[Row, ...]
    footer: tuple[Row, ...]
    numeric: frozenset[int]  # columns aligned right
    empty_text: str


@dataclass(frozen=True)
class LegendEntry:
    colour: str
    text: str


@dataclass(frozen=True)
class StatementContent:
    language: Language
    title: str
    tenant_name: str
    account_id: str
    details: tuple[tuple[str, str], ...]  # (label, value) about the account and customer
    sections: tuple[Section, ...]
    chart_heading: str
    chart: DailyChart
    legend: tuple[LegendEntry, ...]
    chart_note: str


def statement_content(statement: MonthlyStatement, language: Language) -> StatementContent:
    """The bill's text; raises StatementDoesNotReconcile first, so no wrong bill is ever rendered."""
    check_reconciles(statement)
    chart = lay_out_daily_chart(statement)
    return StatementContent(
        language=language,
        title=f"{word('statement', language)} {month_title(statement.month, language)}",
        tenant_name=statement.tenant_name,
        account_id=statement.account_id,
        details=(
            (word("account", language), statement.account_id),
            (word("customer", language), statement.customer_name),
            (word("customer_kind", language), customer_kind_name(statement.customer_kind, language)),
            (word("address", language), statement.address),
            (word("month", language), month_title(statement.month, language)),
            (word("currency", language), statement.currency),
            (word("time_zone", language), statement.time_zone),
        ),
        sections=tuple(build(statement, language) for build in (_summary, _payments, _charges, _other, _usage)),
        chart_heading=word("daily_consumption", language),
        chart=chart,
        legend=tuple(
            LegendEntry(s.colour, f"{utility_name(s.utility, language)} ({unit_name(s.unit, language)}), "
                                  f"{word('peak_day', language)} {quantity(s.peak)}")
            for s in chart.series
        ),
        chart_note=word("chart_note", language),
    )


def _section(name: str, heading: str, headers: tuple[str, ...], rows: list[Row], footer: tuple[Row, ...],
             numeric: set[int], language: Language) -> Section:
    return Section(name, heading, headers, tuple(rows), footer if rows else (), frozenset(numeric),
                   word("none", language))


def _summary(statement: MonthlyStatement, language: Language) -> Section:
    currency, totals = statement.currency, statement.totals
    rows = [
        Row((word("opening_balance", language), money(statement.opening_balance, currency))),
        Row((f"+ {word('payments', language)}", money(totals.payments, currency))),
        Row((f"- {word('charges', language)}", money(totals.charges, currency))),
        Row((f"± {word('other_total', language)}", money(totals.other, currency))),
        Row((word("closing_balance", language), money(statement.closing_balance, currency)), emphasis=True),
    ]
    return _section("summary", word("summary", language), (), rows, (), {1}, language)


def _payments(statement: MonthlyStatement, language: Language) -> Section:
    rows = [Row((local_time(p.paid_at, statement.zone), channel_name(p.channel, language),
                 p.provider_transaction_id, money(p.amount, statement.currency)))
            for p in sorted(statement.payments, key=lambda p: p.paid_at)]
    headers = tuple(word(k, language) for k in ("time", "channel", "transaction_id", "amount"))
    footer = (Row((word("total", language), "", "", money(statement.totals.payments, statement.currency)), True),)
    return _section("payments", word("payments", language), headers, rows, footer, {3}, language)


def _charges(statement: MonthlyStatement, language: Language) -> Section:
    currency = statement.currency
    rows = []
    for utility, subtotal in statement.charges_by_utility().items():
        service = utility_name(utility, language)
        rows += [Row((service, charge_item(line, language), quantity(line.quantity), unit_name(line.unit, language),
                      quantity(line.unit_price), money(line.amount, currency)))
                 for line in statement.charges if line.utility is utility]
        rows.append(Row((service, word("subtotal", language), "", "", "", money(subtotal, currency)), True))
    headers = (*(word(k, language) for k in ("service", "item", "quantity", "unit")),
               f"{word('unit_price', language)} ({currency})", word("amount", language))
    footer = (Row((word("total", language), "", "", "", "", money(statement.totals.charges, currency)), True),)
    return _section("charges", word("charges", language), headers, rows, footer, {2, 4, 5}, language)


def _other(statement: MonthlyStatement, language: Language) -> Section:
    rows = [Row((local_time(o.posted_at, statement.zone), ledger_kind_name(o.kind, language), o.description,
                 money(o.amount, statement.currency)))
            for o in sorted(statement.other_lines, key=lambda o: o.posted_at)]
    headers = tuple(word(k, language) for k in ("time", "kind", "description", "amount"))
    footer = (Row((word("total", language), "", "", money(statement.totals.other, statement.currency)), True),)
    return _section("other", word("other_lines", language), headers, rows, footer, {3}, language)


def _usage(statement: MonthlyStatement, language: Language) -> Section:
    rows = [Row((utility_name(u, language), quantity(q), unit_name(unit, language)))
            for u, (q, unit) in statement.usage_by_utility().items()]
    headers = tuple(word(k, language) for k in ("service", "quantity", "unit"))
    return _section("consumption", word("consumption", language), headers, rows, (), {1}, language)
