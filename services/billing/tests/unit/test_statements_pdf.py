"""The PDF e-bill: the same content as the HTML page, read back with pypdf."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from io import BytesIO

import pytest
from billing.statements import Language, StatementDoesNotReconcile, render_pdf
from billing.statements.examples import sample_statement
from pypdf import PdfReader


def _text(document: bytes) -> tuple[int, str]:
    reader = PdfReader(BytesIO(document))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_english_pdf_holds_the_labels_lines_and_reconciled_totals() -> None:
    document = render_pdf(sample_statement(), Language.EN)
    pages, text = _text(document)

    assert document.startswith(b"%PDF-")
    assert 1 <= pages <= 3
    for expected in ("Riverside Water & Power", "Monthly statement July 2026", "ACC-000123", "Opening balance",
                     "30.00 CNY", "200.00 CNY", "154.69 CNY", "-25.00 CNY", "Closing balance", "50.31 CNY",
                     "Tier 2", "T2 peak", "WeChat Pay", "Daily consumption", "Page 1"):
        assert expected in text, expected


def test_chinese_pdf_holds_chinese_labels_and_the_same_totals() -> None:
    _, text = _text(render_pdf(sample_statement(), Language.ZH_CN))

    for expected in ("月度账单 2026年7月", "期初余额", "期末余额", "第2阶梯", "峰时段 (T2)", "微信支付",
                     "周期性费用", "30.00 CNY", "154.69 CNY", "-25.00 CNY", "50.31 CNY", "第 1 页"):
        assert expected in text, expected


def test_chinese_name_on_an_english_bill_is_set_in_the_cid_font_not_lost() -> None:
    document = render_pdf(sample_statement(), Language.EN)

    assert "Zhang Wei 张伟" in _text(document)[1]
    assert b"STSong-Light" in document


def _filled_rectangles(content: bytes, rgb: bytes) -> int:
    # reportlab sets a fill colour ("r g b rg") and then fills a rectangle ("x y w h re f*").
    return len(re.findall(rb"%s rg\n(?:[^\n]*\n){0,4}n [-\d. ]+ re f\*" % re.escape(rgb), content))


def test_daily_chart_draws_one_bar_per_service_per_day() -> None:
    reader = PdfReader(BytesIO(render_pdf(sample_statement(), Language.EN)))
    content = b"".join(page.get_contents().get_data() for page in reader.pages)  # type: ignore[union-attr]

    assert _filled_rectangles(content, b".168627 .482353 .72549") == 31  # water, #2b7bb9
    assert _filled_rectangles(content, b".878431 .607843 0") == 31  # electricity, #e09b00


def test_markup_in_user_strings_prints_as_text() -> None:
    statement = replace(sample_statement(), customer_name="<b>Li & Sons</b>", address="<script>x</script>")

    _, text = _text(render_pdf(statement, Language.EN))

    assert "<b>Li & Sons</b>" in text
    assert "<script>x</script>" in text


def test_same_statement_gives_the_same_bytes() -> None:
    assert render_pdf(sample_statement(), Language.ZH_CN) == render_pdf(sample_statement(), Language.ZH_CN)


def test_bill_that_does_not_reconcile_is_not_rendered() -> None:
    with pytest.raises(StatementDoesNotReconcile):
        render_pdf(replace(sample_statement(), closing_balance=Decimal("0.00")), Language.ZH_CN)
