"""Registry spreadsheets: CSV files of meters, gateways or SIM cards, read for import and written for export.

A file has a header row naming its columns; only the id column (and, for a new device, its
required fields) must be there. For a device already registered, a column the file leaves out
keeps the stored value, and an empty cell clears it (or sets the default). Export writes every
column, so an exported file imports again unchanged.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from ingest.adapters.registry_forms import GatewayForm, MeterForm, SimCardForm
from ingest.core.registry import Gateway, GatewayDetails, Meter, MeterDetails, SimCard, SimCardDetails
from ingest.core.registry_import import ImportRow, RowProblem
from ingest.core.registry_text import format_read_schedule, nameplate_address

D = TypeVar("D")

_GROUPS = ("building", "customer_type", "district_metered_area")
_LOCATION = ("latitude", "longitude")
EXPORT_ONLY = ("status", "revision")  # written by export for people, ignored by import
# Free text a spreadsheet would run as a formula ("=HYPERLINK(…)"): export prefixes an apostrophe,
# import takes it off again, so the stored value is what the operator typed.
_FREE_TEXT = frozenset({"premise", "room", *_GROUPS, "model", "firmware", "carrier", "data_plan"})
_FORMULA_START = ("=", "+", "-", "@")
# Long digit strings that a spreadsheet turned into numbers: 8.98604E+19 is an ICCID no longer.
_DIGIT_COLUMNS = frozenset({"meter_id", "bus_address", "iccid", "imsi", "msisdn", "registration_id"})
_SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?E\+[0-9]+$", re.IGNORECASE)


@dataclass(frozen=True)
class DeviceSheet(Generic[D]):
    """One kind of device as a spreadsheet: its columns and how a row becomes details and back."""

    kind: str
    id_column: str
    columns: tuple[str, ...]
    details_of: Callable[[dict[str, str]], D]  # raises ValidationError
    tidy_id: Callable[[str], str] = str.strip

    def import_row(self, line: int, cells: Mapping[str, str]) -> ImportRow[D]:
        """The row's details, or every reason they cannot be read."""
        device_id = self.tidy_id(cells.get(self.id_column, ""))
        problems = [f"{self.id_column}: is empty"] if not device_id else []
        problems += [f"{column}: {value} looks like a number a spreadsheet rewrote; format the column as text"
                     for column, value in cells.items() if column in _DIGIT_COLUMNS and _SCIENTIFIC.match(value)]
        given = {k: _untrap(k, v) for k, v in cells.items() if v != "" and k not in EXPORT_ONLY}
        given.pop(self.id_column, None)
        try:
            details = self.details_of(given)
        except ValidationError as exc:
            return ImportRow(line, device_id, None, (*problems, *_column_reasons(exc)))
        return ImportRow(line, device_id, None if problems else details, tuple(problems))


def _meter_details(cells: dict[str, str]) -> MeterDetails:
    nested: dict[str, Any] = {k: v for k, v in cells.items() if k not in (*_GROUPS, *_LOCATION)}
    if any(k in cells for k in _LOCATION):
        nested["location"] = {k: cells[k] for k in _LOCATION if k in cells}
    nested["groups"] = {k: cells[k] for k in _GROUPS if k in cells}
    return MeterForm.model_validate(nested).to_details()


METERS: DeviceSheet[MeterDetails] = DeviceSheet(
    "meters", "meter_id",
    ("meter_id", "utility", "profile", "bus_address", "unit", "multiplier", "dial_count", "installation_date",
     "installation_reading", "premise", "room", *_LOCATION, *_GROUPS, "di_order", "schedule", "gateway_id",
     "channel"),
    _meter_details)
GATEWAYS: DeviceSheet[GatewayDetails] = DeviceSheet(
    "gateways", "gateway_id",
    ("gateway_id", "kind", "registration_id", "model", "firmware", "parent_gateway_id", "channel", "maintenance"),
    lambda cells: GatewayForm.model_validate(cells).to_details())
SIM_CARDS: DeviceSheet[SimCardDetails] = DeviceSheet(
    "sim-cards", "iccid",
    ("iccid", "imsi", "msisdn", "carrier", "data_plan", "quota_bytes", "used_bytes", "expires_on", "gateway_id"),
    lambda cells: SimCardForm.model_validate(cells).to_details(), nameplate_address)
SHEETS: dict[str, DeviceSheet[Any]] = {sheet.kind: sheet for sheet in (METERS, GATEWAYS, SIM_CARDS)}


def _untrap(column: str, value: str) -> str:
    if column in _FREE_TEXT and value.startswith("'") and value[1:2] in _FORMULA_START and value[1:]:
        return value[1:]
    return value


def _column_reasons(exc: ValidationError) -> list[str]:
    reasons = []
    for error in exc.errors(include_url=False, include_input=False):
        names = [part for part in error["loc"] if isinstance(part, str)]
        message = str(error["msg"]).removeprefix("Value error, ")
        reasons.append(f"{names[-1]}: {message}" if names else message)
    return reasons


@dataclass(frozen=True)
class SheetRows:
    """The data rows of a file by line number (cells of the columns it has), or why it is unreadable."""

    rows: tuple[tuple[int, dict[str, str]], ...]
    problems: tuple[RowProblem, ...]


def decode(content: bytes) -> str:
    """UTF-8 (with or without BOM); else GB 18030, what spreadsheets in China save CSV as by default."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("gb18030", errors="replace")


def read_rows(text: str, sheet: DeviceSheet[Any], max_rows: int) -> SheetRows:
    """Split a CSV text into rows; a bad header or an oversized file is a problem of line 1."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _rows(reader, sheet, max_rows)
    except csv.Error as exc:  # e.g. a cell past the csv module's 128 KiB field limit: the file's fault
        return SheetRows((), (RowProblem(max(reader.line_num, 1), "", (f"not readable as CSV: {exc}",)),))


def _rows(reader: Any, sheet: DeviceSheet[Any], max_rows: int) -> SheetRows:
    header = [name.strip() for name in next(reader, [])]
    problem = _header_problem(header, sheet)
    if problem:
        return SheetRows((), (RowProblem(1, "", (problem,)),))
    rows, problems, line = [], [], reader.line_num
    for cells in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(RowProblem(start, "", (f"has {len(cells)} cells, the header has {len(header)}",)))
            continue
        if any("\x00" in cell for cell in cells):  # the registry's database cannot store one
            problems.append(RowProblem(start, "", ("a cell holds a NUL character",)))
            continue
        rows.append((start, {name: cell.strip() for name, cell in zip(header, cells, strict=True)}))
        if len(rows) > max_rows:
            return SheetRows((), (RowProblem(1, "", (f"more than {max_rows} rows; split the file",)),))
    return SheetRows(tuple(rows), tuple(problems))


def _header_problem(header: list[str], sheet: DeviceSheet[Any]) -> str | None:
    known = (*sheet.columns, *EXPORT_ONLY)
    unknown = [name for name in header if name not in known]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if not header or header == [""]:
        return f"the file is empty; the first row names the columns: {', '.join(sheet.columns)}"
    if unknown:
        return f"unknown column(s) {', '.join(map(repr, unknown))}; the {sheet.kind} columns are {', '.join(known)}"
    if repeated:
        return f"column(s) {', '.join(repeated)} appear more than once"
    if sheet.id_column not in header:
        return f"the {sheet.id_column} column is missing"
    return None


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if column in _FREE_TEXT and text.startswith(_FORMULA_START) else text


def meter_cells(meter: Meter) -> dict[str, str]:
    """A meter as a spreadsheet row, every column."""
    d = meter.details
    values: dict[str, object] = {
        "meter_id": meter.meter_id, **{k: getattr(d, k) for k in METERS.columns if hasattr(d, k)},
        "latitude": d.location.latitude if d.location else None,
        "longitude": d.location.longitude if d.location else None,
        **{k: getattr(d.groups, k) for k in _GROUPS},
        "schedule": format_read_schedule(d.schedule) if d.schedule else None,
        "status": meter.status, "revision": meter.revision,
    }
    return {k: _cell(k, v) for k, v in values.items()}


def gateway_cells(gateway: Gateway) -> dict[str, str]:
    d = gateway.details
    values = {"gateway_id": gateway.gateway_id, **{k: getattr(d, k) for k in GATEWAYS.columns[1:]},
              "revision": gateway.revision}
    return {k: _cell(k, v) for k, v in values.items()}


def sim_card_cells(card: SimCard) -> dict[str, str]:
    d = card.details
    values = {"iccid": card.iccid, **{k: getattr(d, k) for k in SIM_CARDS.columns[1:]}, "revision": card.revision}
    return {k: _cell(k, v) for k, v in values.items()}


def write_rows(sheet: DeviceSheet[Any], rows: Iterable[Mapping[str, str]]) -> str:
    """CSV text with a header row: the sheet's columns, then the export-only ones."""
    out = io.StringIO(newline="")
    columns = [*sheet.columns, *(c for c in EXPORT_ONLY if sheet is METERS or c == "revision")]
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
