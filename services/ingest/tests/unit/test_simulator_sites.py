"""The simulated fleet stands somewhere: a building per DTU on a grid around a centre, meters in its rooms,
the same positions every time, and the import rows carry them."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from ingest.adapters.registry_csv import METERS, read_rows
from ingest.simulator import Fleet, FleetSpec
from ingest.simulator.cli import build_parser, spec_of
from ingest.simulator.sites import DEFAULT_CENTRE, building_offset_m, fleet_sites, moved, room_offset_m

SHENZHEN = (Decimal("22.5431"), Decimal("114.0579"))


def metres_between(a: tuple[Decimal, Decimal], b: tuple[Decimal, Decimal]) -> float:
    north = (float(a[0]) - float(b[0])) * 111_320
    east = (float(a[1]) - float(b[1])) * 111_320 * math.cos(math.radians(float(a[0])))
    return math.hypot(north, east)


def test_buildings_stand_on_a_grid_centred_on_the_centre() -> None:
    offsets = [building_offset_m(i, 9) for i in range(9)]

    assert offsets[4] == (0.0, 0.0)  # the middle of a 3 x 3 grid
    assert sorted({north for north, _ in offsets}) == [-60.0, 0.0, 60.0]
    assert sum(north for north, _ in offsets) == sum(east for _, east in offsets) == 0.0
    assert len(set(offsets)) == 9


def test_rooms_fill_floors_four_at_a_time() -> None:
    assert [room_offset_m(p)[1] for p in (0, 1, 3, 4, 47)] == ["101", "102", "104", "201", "1204"]
    assert len({room_offset_m(p)[2] for p in range(32)}) == 32  # no two rooms of a building on one spot


def test_moving_by_metres_lands_that_far_away() -> None:
    there = moved(SHENZHEN, 300.0, 400.0)

    assert metres_between(there, SHENZHEN) == pytest.approx(500.0, abs=0.5)
    assert there[0].as_tuple().exponent == -6


def test_each_dtu_is_a_building_and_its_meters_are_near_it() -> None:
    sites = fleet_sites("SIM", SHENZHEN, [["A1", "A2", "A3", "A4", "A5"], ["B1"], ["C1"]])

    assert {s.building for s in sites.values()} == {"SIM Building 01", "SIM Building 02", "SIM Building 03"}
    assert (sites["A5"].room, sites["A5"].premise) == ("201", "SIM Building 01, Room 201")
    for meter_id, site in sites.items():
        assert metres_between((site.latitude, site.longitude), SHENZHEN) < 120, meter_id
    assert metres_between((sites["A1"].latitude, sites["A1"].longitude),
                          (sites["B1"].latitude, sites["B1"].longitude)) > 30


def test_the_fleet_registers_the_same_sites_every_time_and_they_pass_the_import() -> None:
    spec = FleetSpec(meters=40, dtus=4, seed=2, prefix="MK", tenant="market")
    one, two = Fleet.build(spec), Fleet.build(spec)
    sheet = read_rows(one.csv_meters(), METERS, 100_000)
    rows = [METERS.import_row(line, cells) for line, cells in sheet.rows]

    assert one.csv_meters() == two.csv_meters() and sheet.problems == ()
    assert all(not row.problems and row.details is not None for row in rows)
    details = {row.device_id: row.details for row in rows}
    for dtu in one.dtus.values():
        buildings = {details[m.meter_id].groups.building for m in dtu.meters}  # type: ignore[union-attr]
        assert len(buildings) == 1
    assert all(d.location is not None and d.room for d in details.values())  # type: ignore[union-attr]


def test_the_centre_is_an_option() -> None:
    spec = spec_of(build_parser().parse_args(["--centre", "31.2304, 121.4737"]))
    default = spec_of(build_parser().parse_args([]))
    sites = Fleet.build(spec).sites()

    assert spec.centre == (Decimal("31.2304"), Decimal("121.4737")) and default.centre == DEFAULT_CENTRE
    assert all(abs(s.latitude - Decimal("31.2304")) < Decimal("0.01") for s in sites.values())


@pytest.mark.parametrize("centre", ["north", "91,10", "22.5", "nan,1"])
def test_a_bad_centre_is_a_usage_error(centre: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--centre", centre])
