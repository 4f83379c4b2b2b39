"""Daily collections, arrears and consumption by group as CSV and as .xlsx spreadsheets."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from io import BytesIO, StringIO
from typing import Generic, TypeVar

from openpyxl import Workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from billing.statements.labels import Language, channel_name, unit_name, utility_name, word
from billing.statements.model import Arrears, ConsumptionByGroup, DailyCollections

Row = TypeVar("Row")
Value = str | Decimal | int | date | None

# Excel keeps numbers as binary doubles, exact to 15 significant digits: more, and a money cell
# would no longer hold the amount the ledger has (openpyxl writes a Decimal through float).
_EXCEL_DIGITS = 15
# A text cell starting with one of these is run as a formula by Excel when it opens a CSV.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ColumnKind(StrEnum):
    TEXT = "text"
    MONEY = "money"
    QUANTITY = "quantity"
    COUNT = "count"
    DATE = "date"


_NUMBER_FORMATS = {
    ColumnKind.MONEY: "0.00",
    ColumnKind.QUANTITY: "0.00##",  # at least two places, up to four shown; the cell keeps them all
    ColumnKind.COUNT: "0",
    ColumnKind.DATE: "yyyy-mm-dd",
}


@dataclass(frozen=True)
class Column(Generic[Row]):
    label: str  # a key of the label table
    kind: ColumnKind
    value: Callable[[Row, Language], Value]


@dataclass(frozen=True)
class Report(Generic[Row]):
    name: str  # a key of the label table; the sheet's title
    columns: tuple[Column[Row], ...]


DAILY_COLLECTIONS_REPORT: Report[DailyCollections] = Report("daily_collections", (
    Column("date", ColumnKind.DATE, lambda r, _: r.day),
    Column("channel", ColumnKind.TEXT, lambda r, language: channel_name(r.channel, language)),
    Column("count", ColumnKind.COUNT, lambda r, _: r.count),
    Column("amount", ColumnKind.MONEY, lambda r, _: r.amount),
    Column("currency", ColumnKind.TEXT, lambda r, _: r.currency),
))

ARREARS_REPORT: Report[Arrears] = Report("arrears", (
    Column("account", ColumnKind.TEXT, lambda r, _: r.account_id),
    Column("customer", ColumnKind.TEXT, lambda r, _: r.customer_name),
    Column("balance", ColumnKind.MONEY, lambda r, _: r.balance),
    Column("currency", ColumnKind.TEXT, lambda r, _: r.currency),
    Column("depleted_on", ColumnKind.DATE, lambda r, _: r.depleted_on),
    Column("days_in_arrears", ColumnKind.COUNT, lambda r, _: r.days_in_arrears),
    Column("last_payment_on", ColumnKind.DATE, lambda r, _: r.last_payment_on),
    Column("last_payment_amount", ColumnKind.MONEY, lambda r, _: r.last_payment_amount),
))

CONSUMPTION_BY_GROUP_REPORT: Report[ConsumptionByGroup] = Report("consumption_by_group", (
    Column("service", ColumnKind.TEXT, lambda r, language: utility_name(r.utility, language)),
    Column("customer_group", ColumnKind.TEXT, lambda r, _: r.customer_group),
    Column("quantity", ColumnKind.QUANTITY, lambda r, _: r.quantity),
    Column("unit", ColumnKind.TEXT, lambda r, language: unit_name(r.unit, language)),
    Column("amount", ColumnKind.MONEY, lambda r, _: r.amount),
    Column("currency", ColumnKind.TEXT, lambda r, _: r.currency),
))


def render_csv(report: Report[Row], rows: Sequence[Row], language: Language) -> bytes:
    """UTF-8 with a byte-order mark (Excel then reads Chinese right); decimals as exact plain text."""
    text = StringIO()
    writer = csv.writer(text)
    writer.writerow([word(column.label, language) for column in report.columns])
    for row in rows:
        writer.writerow([_csv_text(column.value(row, language), column.kind) for column in report.columns])
    return text.getvalue().encode("utf-8-sig")


def _csv_text(value: Value, kind: ColumnKind) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # str() could write 1E+3
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    # The quote keeps a name like "=HYPERLINK(...)" from running as a formula in Excel.
    return f"'{text}" if kind is ColumnKind.TEXT and text.startswith(_FORMULA_START) else text


def render_xlsx(report: Report[Row], rows: Sequence[Row], language: Language) -> bytes:
    """One sheet: a bold, frozen header with filters; money, quantities and dates as typed cells."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new Workbook always has one sheet
    sheet.title = _sheet_title(word(report.name, language))
    headers = [word(column.label, language) for column in report.columns]
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = [_display_width(header) for header in headers]
    for row_number, row in enumerate(rows, start=2):
        for index, column in enumerate(report.columns):
            value = column.value(row, language)
            _write_cell(sheet.cell(row_number, index + 1), value, column.kind)
            widths[index] = max(widths[index], _display_width(_csv_text(value, column.kind)))
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 3, 60)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    output = BytesIO()
    workbook.save(output)
    return output.getvalue()


def _write_cell(cell: Cell | MergedCell, value: Value, kind: ColumnKind) -> None:
    if kind is ColumnKind.MONEY and isinstance(value, Decimal) and len(value.as_tuple().digits) > _EXCEL_DIGITS:
        raise ValueError(f"{value} has more digits than a spreadsheet number holds exactly")
    cell.value = value
    if kind is ColumnKind.TEXT:
        cell.data_type = "s"  # openpyxl would store text starting with "=" as a formula
    else:
        cell.number_format = _NUMBER_FORMATS[kind]


def _display_width(text: str) -> int:
    # Chinese characters take two columns' width in a spreadsheet.
    return sum(2 if ord(character) >= 0x2E80 else 1 for character in text)


def _sheet_title(title: str) -> str:
    # Excel refuses sheet names over 31 characters or with any of []:*?/\
    return "".join(" " if c in "[]:*?/\\" else c for c in title)[:31]
