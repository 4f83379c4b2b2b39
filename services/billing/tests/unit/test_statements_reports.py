"""Reports as CSV and .xlsx: exact decimals, Chinese that Excel reads, text that never runs as a formula."""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from io import BytesIO, StringIO
from zipfile import ZipFile

import pytest
from amiflow_schemas.primitives import Unit, Utility
from billing.statements import (
    ARREARS_REPORT,
    CONSUMPTION_BY_GROUP_REPORT,
    DAILY_COLLECTIONS_REPORT,
    Arrears,
    ConsumptionByGroup,
    Language,
    render_csv,
    render_xlsx,
)
from billing.statements.examples import sample_arrears, sample_consumption_by_group, sample_daily_collections
from openpyxl import load_workbook

FORMULA = '=HYPERLINK("http://evil.example","pay here")'


def _csv_rows(document: bytes) -> list[list[str]]:
    return list(csv.reader(StringIO(document.decode("utf-8-sig"), newline="")))


def _sheet_rows(document: bytes) -> list[tuple[object, ...]]:
    sheet = load_workbook(BytesIO(document)).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def _exact(number: object) -> Decimal:
    # Excel and openpyxl hold binary doubles; the shortest repr gives back the decimal written.
    assert isinstance(number, int | float)
    return Decimal(repr(number))


def test_csv_starts_with_a_bom_and_has_chinese_headers_and_values() -> None:
    document = render_csv(DAILY_COLLECTIONS_REPORT, sample_daily_collections(), Language.ZH_CN)

    assert document.startswith(b"\xef\xbb\xbf")
    assert _csv_rows(document) == [
        ["日期", "渠道", "笔数", "金额", "币种"],
        ["2026-07-05", "微信支付", "412", "38210.50", "CNY"],
        ["2026-07-05", "支付宝", "233", "19876.05", "CNY"],
        ["2026-07-05", "营业厅", "7", "1400.00", "CNY"],
    ]


def test_csv_writes_decimals_as_plain_exact_text() -> None:
    rows = _csv_rows(render_csv(CONSUMPTION_BY_GROUP_REPORT, sample_consumption_by_group(), Language.EN))

    assert rows[0] == ["Service", "Customer group", "Quantity", "Unit", "Amount", "Currency"]
    assert rows[1] == ["Water", "居民 residential", "18234.125", "m³", "91170.63", "CNY"]
    assert [Decimal(row[4]) for row in rows[1:]] == [r.amount for r in sample_consumption_by_group()]


def test_csv_leaves_a_missing_last_payment_empty_and_keeps_negative_balances_numeric() -> None:
    rows = _csv_rows(render_csv(ARREARS_REPORT, sample_arrears(), Language.EN))

    assert rows[2] == ["ACC-000901", "Harbour Noodle Bar", "-0.30", "CNY", "2026-07-30", "1", "", ""]


def test_csv_text_that_excel_would_run_as_a_formula_is_quoted() -> None:
    row = Arrears("ACC-1", FORMULA, Decimal("-1.00"), "CNY", date(2026, 7, 1), 3, None, None)

    rows = _csv_rows(render_csv(ARREARS_REPORT, [row], Language.EN))

    assert rows[1][1] == "'" + FORMULA
    assert rows[1][2] == "-1.00"


def test_xlsx_round_trips_typed_cells_with_exact_money() -> None:
    document = render_xlsx(ARREARS_REPORT, sample_arrears(), Language.ZH_CN)
    rows = _sheet_rows(document)

    assert rows[0] == ("账户", "客户", "余额", "币种", "欠费日期", "欠费天数", "最近缴费日期", "最近缴费金额")
    account, customer, balance, currency, depleted_on, days, last_on, last_amount = rows[1]
    assert (account, customer, currency, days) == ("ACC-000777", "李娜", "CNY", 11)
    assert (_exact(balance), _exact(last_amount)) == (Decimal("-12.47"), Decimal("100.00"))
    assert (depleted_on, last_on) == (datetime(2026, 7, 20), datetime(2026, 6, 2))
    assert rows[2][6:] == (None, None)


def test_xlsx_money_cells_are_numbers_formatted_with_two_decimals() -> None:
    document = render_xlsx(DAILY_COLLECTIONS_REPORT, sample_daily_collections(), Language.EN)
    sheet = load_workbook(BytesIO(document)).active
    assert sheet is not None

    amount, count, day = sheet["D2"], sheet["C2"], sheet["A2"]

    assert (amount.data_type, amount.number_format, _exact(amount.value)) == ("n", "0.00", Decimal("38210.5"))
    assert (count.value, count.number_format) == (412, "0")
    assert day.number_format == "yyyy-mm-dd"
    assert sheet.title == "Daily collections"
    assert sheet.freeze_panes == "A2"


def test_xlsx_money_reads_back_as_the_same_cents_where_binary_floats_drift() -> None:
    # openpyxl writes a Decimal through a float with 16 digits (9.87 becomes 9.869999999999999);
    # Excel reads that back as the very double it holds for 9.87, so no cent is ever lost.
    amounts = [Decimal(a) for a in ("9.87", "0.07", "0.56", "0.10", "1234567890.12", "99999999999.99")]
    rows = [ConsumptionByGroup(Utility.WATER, "g", Decimal(1), Unit.M3, amount, "CNY") for amount in amounts]

    read_back = [row[4] for row in _sheet_rows(render_xlsx(CONSUMPTION_BY_GROUP_REPORT, rows, Language.EN))[1:]]

    assert [_exact(value) for value in read_back] == [amount.normalize() for amount in amounts]


def test_xlsx_text_starting_with_equals_stays_text() -> None:
    row = Arrears("ACC-1", FORMULA, Decimal("-1.00"), "CNY", date(2026, 7, 1), 3, None, None)

    document = render_xlsx(ARREARS_REPORT, [row], Language.EN)
    sheet = load_workbook(BytesIO(document)).active
    assert sheet is not None

    assert (sheet["B2"].value, sheet["B2"].data_type) == (FORMULA, "s")
    assert "<f>" not in ZipFile(BytesIO(document)).read("xl/worksheets/sheet1.xml").decode()


def test_xlsx_refuses_money_beyond_what_a_spreadsheet_number_holds() -> None:
    row = Arrears("ACC-1", "x", Decimal("-12345678901234.56"), "CNY", date(2026, 7, 1), 3, None, None)

    with pytest.raises(ValueError, match="more digits"):
        render_xlsx(ARREARS_REPORT, [row], Language.EN)


def test_empty_report_still_has_its_header() -> None:
    assert _sheet_rows(render_xlsx(DAILY_COLLECTIONS_REPORT, [], Language.EN)) == [
        ("Date", "Channel", "Number of payments", "Amount", "Currency"),
    ]
    assert _csv_rows(render_csv(DAILY_COLLECTIONS_REPORT, [], Language.ZH_CN)) == [
        ["日期", "渠道", "笔数", "金额", "币种"],
    ]
