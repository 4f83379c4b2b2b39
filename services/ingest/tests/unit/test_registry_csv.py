"""Registry spreadsheets and labels: rows read with their line numbers and every problem, files written
back so they import unchanged, and labels whose QR code holds the device's URI."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal
from xml.etree import ElementTree

import pytest
import segno
from amiflow_schemas.events.registry import GatewayKind, ScheduleKind
from amiflow_schemas.primitives import Unit, Utility
from ingest.adapters.labels import MAX_CAPTION_CHARS, QR_BORDER, gateway_label, label_png, label_svg, meter_label
from ingest.adapters.registry_csv import (
    GATEWAYS,
    METERS,
    SIM_CARDS,
    decode,
    meter_cells,
    read_rows,
    write_rows,
)
from ingest.core.registry import (
    Gateway,
    GatewayDetails,
    Location,
    Meter,
    MeterDetails,
    MeterGroups,
    ReadSchedule,
    Topology,
)
from ingest.core.registry_import import ImportRow, plan_gateway_import, plan_meter_import

HEADER = "meter_id,utility,profile,bus_address,unit,schedule,gateway_id\n"
NOW = datetime(2026, 11, 21, tzinfo=UTC)
METER = Meter("t1", "WM-1", MeterDetails(
    Utility.WATER, "cjt188-water-2004", "00000012345678", Unit.M3, Decimal("0.01"), 8, None, Decimal("3.5"),
    "=HYPERLINK(\"x\")", "1201", Location(Decimal("-33.9"), Decimal("151.2")),
    MeterGroups("B3", "residential", "DMA-07"), None, ReadSchedule(ScheduleKind.DAILY, time(1, 0), 1800),
    None, None))


def meter_rows(text: str) -> list[ImportRow[MeterDetails]]:
    sheet = read_rows(text, METERS, max_rows=100)
    assert sheet.problems == ()
    return [METERS.import_row(line, cells) for line, cells in sheet.rows]


def test_rows_carry_their_line_numbers_even_after_quoted_line_breaks_and_blank_lines() -> None:
    text = HEADER + 'WM-1,water,"cjt188-\nwater",12,m3,hourly,\n\nWM-2,water,p,13,m3,push,\n'

    sheet = read_rows(text, METERS, max_rows=100)

    assert [line for line, _ in sheet.rows] == [2, 5]


def test_a_good_row_becomes_details_in_the_cores_terms() -> None:
    (row,) = meter_rows(HEADER + "WM-1,water,cjt188-water-2004,0000 0012 3456 78,m3,daily 01:00 jitter 30m,DTU-1\n")

    assert row.problems == () and row.details is not None
    assert row.details.bus_address == "00000012345678" and row.details.multiplier == Decimal(1)
    assert row.details.schedule == ReadSchedule(ScheduleKind.DAILY, time(1, 0), 1800)


def test_every_unreadable_cell_of_a_row_is_reported_by_its_column() -> None:
    (row,) = meter_rows(HEADER.replace("\n", ",latitude,dial_count\n")
                        + "WM-1,steam,p,12,m3,sometimes,,91x,eight\n")

    columns = sorted(reason.split(":")[0] for reason in row.problems)
    assert columns == ["dial_count", "latitude", "longitude", "schedule", "utility"]
    assert row.details is None


def test_digits_a_spreadsheet_turned_into_a_number_are_named_as_such() -> None:
    (row,) = meter_rows(HEADER + "WM-1,water,p,1.23457E+13,m3,,\n")

    assert any("format the column as text" in reason for reason in row.problems)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "the file is empty"),
    ("meter_id,utility,bus_adress\n", "unknown column(s) 'bus_adress'"),
    ("utility,profile\n", "the meter_id column is missing"),
    ("meter_id,meter_id\n", "appear more than once"),
])
def test_a_bad_header_is_one_problem_of_line_one(text: str, reason: str) -> None:
    sheet = read_rows(text, METERS, max_rows=100)

    assert sheet.rows == () and sheet.problems[0].line == 1 and reason in sheet.problems[0].reasons[0]


def test_rows_with_the_wrong_number_of_cells_and_oversized_files_are_refused() -> None:
    assert read_rows(HEADER + "WM-1,water\n", METERS, 100).problems[0].reasons == (
        "has 2 cells, the header has 7",)
    many = HEADER + "".join(f"WM-{n},water,p,{n},m3,,\n" for n in range(5))
    assert "more than 3 rows" in read_rows(many, METERS, 3).problems[0].reasons[0]


def test_files_saved_as_utf8_with_bom_or_as_gb18030_are_both_read() -> None:
    text = HEADER + "WM-1,water,p,12,m3,,\n"

    assert decode(b"\xef\xbb\xbf" + text.encode()) == text
    assert decode("premise\n三号楼\n".encode("gb18030")) == "premise\n三号楼\n"


def test_an_exported_meter_imports_back_to_the_same_details_and_formulas_stay_inert() -> None:
    written = write_rows(METERS, [meter_cells(METER)])

    assert "'=HYPERLINK" in written  # a spreadsheet shows it as text instead of running it
    (row,) = meter_rows(written)
    assert row.problems == () and row.details == METER.details


def test_sheets_name_their_id_columns() -> None:
    assert (METERS.id_column, GATEWAYS.id_column, SIM_CARDS.id_column) == ("meter_id", "gateway_id", "iccid")
    (line, cells), = read_rows("iccid,msisdn\n8986 0412 3456 7890 1234,1064812345678\n", SIM_CARDS, 10).rows
    assert SIM_CARDS.import_row(line, cells).device_id == "89860412345678901234"


# --- planning an import -------------------------------------------------------------------------

def test_an_import_plan_lists_every_bad_row_and_counts_the_good_ones() -> None:
    rows = meter_rows(HEADER + "WM-1,water,p,12,m3,,\nWM-2,water,p,12,m3,,\nWM-1,water,p,13,m3,,\n"
                      "WM-3,gas,p,14,kWh,,\nWM-4,water,p,15,m3,,DTU-9\n")

    plan = plan_meter_import("t1", rows, {}, Topology())

    assert not plan.acceptable and plan.registered == 2
    assert [(p.line, p.device_id) for p in plan.problems] == [(4, "WM-1"), (5, "WM-3"), (6, "WM-4")]
    assert "also on line 2" in plan.problems[0].reasons[0]


def test_addresses_already_taken_earlier_in_the_same_file_are_conflicts() -> None:
    topology = Topology()
    topology.add_gateway(Gateway("t1", "DTU-1", GatewayDetails(GatewayKind.DTU)))
    rows = meter_rows(HEADER + "WM-1,water,p,12,m3,,DTU-1\nWM-2,water,p,12,m3,,DTU-1\n")

    plan = plan_meter_import("t1", rows, {}, topology)

    assert [p.line for p in plan.problems] == [3] and "used by meter WM-1" in plan.problems[0].reasons[0]


def test_collectors_may_come_before_their_dtu_in_the_file_and_point_at_its_bad_row() -> None:
    text = ("gateway_id,kind,registration_id,parent_gateway_id\n"
            "COL-1,collector,,DTU-1\nDTU-1,dtu,861234567890123,\nCOL-2,collector,,DTU-2\nDTU-2,dtu,bad id,\n")
    rows = [GATEWAYS.import_row(line, cells) for line, cells in read_rows(text, GATEWAYS, 10).rows]

    plan = plan_gateway_import("t1", rows, {}, Topology())

    assert [(p.line, p.device_id) for p in plan.problems] == [(4, "COL-2"), (5, "DTU-2")]
    assert plan.problems[0].reasons == ("parent_gateway_id: gateway DTU-2 on line 5 has problems",)
    assert plan.registered == 2


def test_an_unchanged_row_is_counted_and_announces_nothing() -> None:
    (row,) = meter_rows(write_rows(METERS, [meter_cells(METER)]))

    plan = plan_meter_import("t1", [row], {"WM-1": METER}, Topology())

    assert (plan.unchanged, plan.update.events) == (1, ())


# --- labels -------------------------------------------------------------------------------------

def _png_pixels(png: bytes) -> list[bytes]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    idat = png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    return [raw[y * (width + 1) + 1:(y + 1) * (width + 1)] for y in range(height)]


def test_the_png_label_holds_the_qr_code_of_the_devices_uri_module_for_module() -> None:
    label = meter_label(METER)
    modules = list(segno.make(label.uri, error="m", micro=False).matrix_iter(scale=1, border=QR_BORDER))
    pixels = _png_pixels(label_png(label, module_px=8))
    left = (len(pixels[0]) - len(modules) * 8) // 2

    sampled = [[pixels[y * 8 + 4][left + x * 8 + 4] == 0 for x in range(len(modules))] for y in range(len(modules))]

    assert label.uri == "amiflow://t1/meter/WM-1"
    assert sampled == [[bool(m) for m in row] for row in modules]
    assert any(0 in row for row in pixels[len(modules) * 8:])  # the caption is drawn below


def test_the_svg_label_is_a_document_with_the_uri_and_the_caption_escaped() -> None:
    gateway = Gateway("t&1", "DTU-1", GatewayDetails(GatewayKind.DTU, "861234567890123", model="USR-G780 <v2>"))

    svg = ElementTree.fromstring(label_svg(gateway_label(gateway)))

    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.find("s:title", ns).text == "amiflow://t%261/gateway/DTU-1"  # type: ignore[union-attr]
    assert [t.text for t in svg.iterfind(".//s:text", ns)] == ["DTU-1", "dtu · USR-G780 <v2> · 861234567890123"]
    assert svg.find("s:path", ns).get("d", "").startswith("M")  # type: ignore[union-attr]


def test_a_long_caption_is_shortened_not_overflowing() -> None:
    long = replace(METER, details=replace(METER.details, profile="p" * 60))

    svg = ElementTree.fromstring(label_svg(meter_label(long)))

    caption = [t.text or "" for t in svg.iterfind(".//{http://www.w3.org/2000/svg}text")][1]
    assert len(caption) == MAX_CAPTION_CHARS and caption.endswith("…")
