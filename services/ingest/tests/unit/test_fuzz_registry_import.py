"""Fuzzing the registry's spreadsheet import: any uploaded bytes become rows and a plan, or listed problems.

POST /v1/registry/import runs decode → read_rows → import_row → plan_*_import with no try around
them: an exception anywhere is a 500 for an operator who uploaded a file. The property: every file
gives a plan (its events encodable for the outbox) or problems with line numbers — nothing raised —
and the operator-notation parsers raise only ValueError, which the forms turn into 422 reasons.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from amiflow_schemas import encode_event
from amiflow_schemas.events.registry import GatewayKind
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from ingest.adapters.registry_csv import (
    EXPORT_ONLY,
    GATEWAYS,
    METERS,
    SHEETS,
    SIM_CARDS,
    DeviceSheet,
    decode,
    read_rows,
)
from ingest.core.registry import Gateway, GatewayDetails, Topology
from ingest.core.registry_import import ImportPlan, plan_gateway_import, plan_meter_import, plan_sim_card_import
from ingest.core.registry_text import nameplate_address, parse_di_order, parse_read_schedule, time_of_day

EXAMPLES = int(os.environ.get("AMIFLOW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NOW = datetime(2026, 11, 21, tzinfo=UTC)
MAX_ROWS = 50

# Values each column really takes, and what spreadsheets and people put in cells instead.
_GOOD = {
    "meter_id": ["WM-0001", "EM-7", "WM-0001"], "utility": ["water", "electricity", "gas", "heat"],
    "profile": ["cjt188-water-2004", "dlt645-single-phase", "no-such-profile"],
    "bus_address": ["00000012345678", "0000 1234 5678", "AAAAAAAAAAAAAA", "12"], "unit": ["m3", "kWh", "GJ"],
    "multiplier": ["1", "0.01", "-1", "0"], "dial_count": ["8", "0", "-3"], "installation_date": ["2026-01-31"],
    "installation_reading": ["3.5", "-1"], "latitude": ["-33.9", "91"], "longitude": ["151.2", "181"],
    "di_order": ["90 1F", "1f90", "9 01F"], "schedule": ["daily 01:00 jitter 30m", "hourly", "push", "daily 24:00",
                                                         "daily 1:00 jitter 99999h", "push jitter 1s"],
    "gateway_id": ["DTU-1", "COL-1", "DTU-404"], "channel": ["1", "A"], "kind": ["dtu", "concentrator", "collector"],
    "registration_id": ["861234567890123", "bad id", "0200-04660"], "parent_gateway_id": ["DTU-1", "COL-1"],
    "maintenance": ["in_service", "retired"], "iccid": ["8986 0412 3456 7890 1234", "89860412345678901234"],
    "imsi": ["460001234567890"], "quota_bytes": ["1048576", "-1"], "used_bytes": ["0"],
    "expires_on": ["2027-01-01", "2027-02-30"],
}
_ODD = st.sampled_from([
    "", " ", "=HYPERLINK(\"x\")", "'=1+1", "8.98604E+19", "1E+999999", "NaN", "inf", "-0", "0x1F",
    "\u0661\u0662:\u0663\u0660", "\x00", "\ufeff", "a\nb", '"quoted"', "水表-一号", "\U0001d7d8\U0001d7d9", "9" * 300,
    "daily 99:99", "12:30:45", ":", "A" * 200,
]) | st.text(max_size=40)


@st.composite
def _sheet_file(draw: st.DrawFn, sheet: DeviceSheet[Any]) -> bytes:
    """A CSV a person might upload: the sheet's columns (some missing, repeated or unknown) and odd cells."""
    columns = draw(st.lists(st.sampled_from([*sheet.columns, *EXPORT_ONLY]), min_size=1, max_size=12, unique=True))
    if draw(st.integers(0, 9)) == 0:
        columns.append(draw(st.sampled_from(["colour", sheet.id_column, ""])))
    elif sheet.id_column not in columns:
        columns.insert(0, sheet.id_column)
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        cells = [draw(st.sampled_from(_GOOD.get(c, ["x"])) | _ODD) for c in columns]
        if draw(st.integers(0, 9)) == 0:
            cells = cells[: draw(st.integers(0, len(cells)))]  # a short row
        rows.append(cells)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=draw(st.sampled_from(["\r\n", "\n"]))).writerows([columns, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
    return out.getvalue().encode(encoding, errors="replace")


def _plan(sheet: DeviceSheet[Any], content: bytes) -> tuple[ImportPlan, int]:
    """What POST /v1/registry/import computes before the database: rows, then the plan against a small registry."""
    rows = read_rows(decode(content), sheet, MAX_ROWS)
    imported = [sheet.import_row(line, cells) for line, cells in rows.rows]
    topology = Topology()
    topology.add_gateway(Gateway("t1", "DTU-1", GatewayDetails(GatewayKind.DTU, registration_id="861234567890123")))
    if sheet is METERS:
        plan = plan_meter_import("t1", imported, {}, topology)
    elif sheet is GATEWAYS:
        plan = plan_gateway_import("t1", imported, {}, topology)
    else:
        plan = plan_sim_card_import("t1", imported, {}, topology, NOW)
    return plan, len(rows.problems)


def _check(sheet: DeviceSheet[Any], content: bytes) -> None:
    plan, unreadable = _plan(sheet, content)
    for problem in plan.problems:
        assert problem.line >= 2 and problem.reasons and all(problem.reasons)
    for envelope in plan.update.events:
        stored = encode_event(envelope)  # what the outbox stores must serialise, and fit PostgreSQL text
        assert b"\\u0000" not in stored, stored
    event("plan acceptable" if plan.acceptable and not unreadable else "problems listed")


@FUZZ
@given(st.sampled_from(list(SHEETS.values())).flatmap(lambda s: st.tuples(st.just(s), _sheet_file(s))))
@example((METERS, b"meter_id\n\"" + b"x" * 200_000 + b"\"\n"))  # a cell past the csv module's field limit
@example((SIM_CARDS, b"iccid,quota_bytes\n1," + b"9" * 5000 + b"\n"))
def test_any_sheet_file_gives_a_plan_or_listed_problems_never_an_exception(
    case: tuple[DeviceSheet[Any], bytes],
) -> None:
    sheet, content = case
    _check(sheet, content)


def test_a_cell_holding_a_nul_character_is_a_problem_of_its_line() -> None:
    rows = read_rows("meter_id,premise\nWM-1,ok\nWM-2,a\x00b\n", METERS, MAX_ROWS)

    assert [line for line, _ in rows.rows] == [2]
    assert [(p.line, p.reasons) for p in rows.problems] == [(3, ("a cell holds a NUL character",))]


def test_a_cell_past_the_csv_modules_field_limit_is_a_problem_of_its_line_not_a_crash() -> None:
    text = "meter_id,premise\nWM-1,ok\nWM-2,\"" + "x" * 200_000 + "\"\n"

    rows = read_rows(text, METERS, MAX_ROWS)

    assert rows.rows == () and [(p.line, p.device_id) for p in rows.problems] == [(3, "")]
    assert "not readable as CSV: field larger than field limit" in rows.problems[0].reasons[0]


@FUZZ
@given(st.sampled_from(list(SHEETS.values())), st.binary(max_size=2000))
def test_random_bytes_uploaded_as_a_sheet_give_listed_problems_never_an_exception(
    sheet: DeviceSheet[Any], content: bytes
) -> None:
    _check(sheet, content)


@FUZZ
@given(st.sampled_from(_GOOD["schedule"]) | _ODD, st.sampled_from(_GOOD["di_order"]) | _ODD,
       st.sampled_from(["01:00", "23:59", "24:00", "1:2:3", "\u0661:\u0660\u0660"]) | _ODD)
def test_operator_notation_parsers_raise_only_value_error(schedule: str, di_order: str, at: str) -> None:
    for parse, text in ((parse_read_schedule, schedule), (parse_di_order, di_order), (time_of_day, at),
                        (nameplate_address, schedule)):
        try:
            parse(text)  # type: ignore[operator]
        except ValueError as exc:
            assert str(exc)
