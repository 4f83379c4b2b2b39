"""The HTML e-bill: self-contained, in Chinese and English, with the totals and a bar group per day."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from amiflow_schemas.events.billing import PaymentChannel
from amiflow_schemas.primitives import Unit, Utility
from billing.statements import (
    CustomerKind,
    Language,
    LedgerLineKind,
    StatementDoesNotReconcile,
    render_html,
)
from billing.statements.examples import (
    SAMPLE_ADJUSTMENT,
    SAMPLE_PAYMENT,
    SAMPLE_PROPERTY_FEE,
    sample_statement,
)
from billing.statements.labels import keys, money, word

SCRIPT = "<script>alert(1)</script>"


class _Elements(HTMLParser):
    """Collects start tags and visible text, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Elements:
    elements = _Elements()
    elements.feed(page)
    return elements


def _summary(page: str) -> list[tuple[str, str]]:
    section = re.search(r'<section class="summary">(.*?)</section>', page, re.S)
    assert section is not None
    return re.findall(r'<td>([^<]*)</td><td class="num">([^<]*)</td>', section.group(1))


def test_chinese_bill_has_chinese_labels_and_the_reconciled_totals() -> None:
    page = render_html(sample_statement(), Language.ZH_CN)
    text = " ".join(_parse(page).text)

    assert '<html lang="zh-CN">' in page
    for label in ("月度账单 2026年7月", "缴费记录", "费用明细", "第1阶梯", "第2阶梯", "峰时段 (T2)", "谷时段 (T4)",
                  "每日表计服务费", "微信支付", "调整", "周期性费用", "立方米", "千瓦时", "每日用量"):
        assert label in text, label
    assert _summary(page) == [("期初余额", "30.00 CNY"), ("+ 缴费记录", "200.00 CNY"), ("- 费用明细", "154.69 CNY"),
                              ("± 其他账目", "-25.00 CNY"), ("期末余额", "50.31 CNY")]
    for amount in ("60.60 CNY", "94.09 CNY", "5.00 CNY", "-30.00 CNY"):  # subtotals, the two other lines
        assert amount in text, amount
    assert "Opening balance" not in text


def test_english_bill_has_english_labels_and_the_reconciled_totals() -> None:
    page = render_html(sample_statement(), Language.EN)
    text = " ".join(_parse(page).text)

    assert '<html lang="en">' in page
    for label in ("Monthly statement July 2026", "Tier 1", "Tier 2", "T1 sharp", "T4 valley", "WeChat Pay",
                  "Adjustment", "Recurring charge", "Property fee, July 2026",
                  "Meter service fee (daily)", "m³", "kWh"):
        assert label in text, label
    assert _summary(page) == [("Opening balance", "30.00 CNY"), ("+ Payments", "200.00 CNY"),
                              ("- Charges", "154.69 CNY"), ("± Other ledger entries", "-25.00 CNY"),
                              ("Closing balance", "50.31 CNY")]
    assert "期初余额" not in text


def test_chart_is_inline_svg_with_one_bar_group_per_day_and_one_bar_per_service() -> None:
    tags = _parse(render_html(sample_statement(), Language.EN)).tags

    groups = [attrs["data-day"] for tag, attrs in tags if tag == "g" and attrs.get("class") == "day"]
    bars = [attrs["class"] for tag, attrs in tags if tag == "rect"]

    assert sum(tag == "svg" for tag, _ in tags) == 1
    assert groups == [f"2026-07-{day:02d}" for day in range(1, 32)]
    assert bars.count("bar water") == 31
    assert bars.count("bar electricity") == 31


def test_highest_day_fills_the_plot_and_others_are_drawn_to_scale() -> None:
    page = render_html(sample_statement(), Language.EN)
    heights = {title: float(height) for height, title in
               re.findall(r'<rect class="bar water"[^>]*height="([\d.]+)"[^>]*><title>([^<]+)</title>', page)}

    # The month's water peak is the last day, 0.630 m³; the first day has 0.310 m³.
    assert heights["2026-07-01 Water 0.310 m³"] == pytest.approx(heights["2026-07-31 Water 0.630 m³"] * 0.31 / 0.63,
                                                                abs=0.01)


def test_page_is_self_contained() -> None:
    page = render_html(sample_statement(), Language.ZH_CN)
    tags = _parse(page).tags

    assert page.startswith("<!DOCTYPE html>")
    assert not [tag for tag, _ in tags if tag in {"script", "link", "img", "iframe", "object"}]
    assert not [attrs for _, attrs in tags if "src" in attrs or "href" in attrs]
    assert "<style>" in page and "@page" in page


def test_user_supplied_strings_are_escaped() -> None:
    statement = replace(
        sample_statement(),
        tenant_name=f"Utility {SCRIPT}",
        customer_name=SCRIPT,
        address='Room "1" & <b>2</b>',
        payments=(replace(SAMPLE_PAYMENT, provider_transaction_id="<img>"),),
        other_lines=(SAMPLE_PROPERTY_FEE, replace(SAMPLE_ADJUSTMENT, description=f"re-rated {SCRIPT}")),
    )

    page = render_html(statement, Language.EN)
    elements = _parse(page)

    assert "<script" not in page
    assert [tag for tag, _ in elements.tags if tag in {"script", "img", "b"}] == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'Room "1" & <b>2</b>' in elements.text  # what the reader sees is the text as given


def test_bill_that_does_not_reconcile_is_not_rendered() -> None:
    with pytest.raises(StatementDoesNotReconcile):
        render_html(replace(sample_statement(), opening_balance=Decimal("0.00")), Language.EN)


def test_empty_sections_say_so_instead_of_printing_an_empty_table() -> None:
    statement = sample_statement()
    statement = replace(statement, payments=(), other_lines=(), opening_balance=Decimal("205.00"),
                        totals=replace(statement.totals, payments=Decimal("0.00"), other=Decimal("0.00")))

    page = render_html(statement, Language.ZH_CN)

    assert page.count("本月无记录。") == 2


def test_every_label_and_enum_member_has_both_languages() -> None:
    expected = {f"utility.{u.value}" for u in Utility} | {f"unit.{u.value}" for u in Unit}
    expected |= {f"channel.{c.value}" for c in PaymentChannel} | {f"ledger.{k.value}" for k in LedgerLineKind}
    expected |= {f"customer_kind.{k.value}" for k in CustomerKind}

    assert expected <= keys()
    for key in keys():
        assert word(key, Language.EN) != word(key, Language.ZH_CN), key


def test_money_prints_two_decimals_grouped_and_never_minus_zero() -> None:
    assert money(Decimal("1234567.5"), "CNY") == "1,234,567.50 CNY"
    assert money(Decimal("-0.00"), "CNY") == "0.00 CNY"
    with pytest.raises(ValueError, match="cents"):
        money(Decimal("0.125"), "CNY")
