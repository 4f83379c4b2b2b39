"""Where a simulated fleet stands: each DTU a building on a grid around a centre, its meters in its rooms.

Pure and deterministic: the same DTUs and meters always get the same buildings, rooms and
coordinates, so registering the fleet again changes nothing. Coordinates are WGS 84 degrees with
six decimals (about 0.1 m), close enough together for a map of one market or estate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

DEFAULT_CENTRE = (Decimal("22.5431"), Decimal("114.0579"))  # Futian, Shenzhen
BUILDING_SPACING_M = 60.0  # between neighbouring buildings of the grid
ROOMS_PER_FLOOR = 4
METRES_PER_DEGREE = 111_320.0  # of latitude; of longitude times cos(latitude)
_PLACES = Decimal("0.000001")
# The rooms of a floor sit at the corners of the building; floors shift east a little, so markers of
# one corner do not hide each other on a map.
_ROOM_CORNERS_M = ((-6.0, -6.0), (-6.0, 6.0), (6.0, -6.0), (6.0, 6.0))  # (north, east) per room of a floor
_FLOOR_STEP_M, _FLOOR_CYCLE = 1.5, 8


@dataclass(frozen=True)
class Site:
    """Where one meter is: its building, room, the premise a front desk would search for, and its position."""

    building: str
    room: str
    premise: str
    latitude: Decimal
    longitude: Decimal


def building_name(prefix: str, index: int) -> str:
    """``SIM Building 03`` for the third DTU of the SIM fleet."""
    return f"{prefix} Building {index + 1:02d}"


def building_offset_m(index: int, count: int) -> tuple[float, float]:
    """(north, east) of building ``index`` of ``count`` from the centre: a square grid, row by row."""
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    row, column = divmod(index, columns)
    return ((rows - 1) / 2 - row) * BUILDING_SPACING_M, (column - (columns - 1) / 2) * BUILDING_SPACING_M


def room_offset_m(position: int) -> tuple[int, str, tuple[float, float]]:
    """Floor, room number and (north, east) offset from the building's centre of its ``position``-th meter."""
    floor, unit = divmod(position, ROOMS_PER_FLOOR)
    floor += 1
    north, east = _ROOM_CORNERS_M[unit]
    east += ((floor - 1) % _FLOOR_CYCLE) * _FLOOR_STEP_M
    return floor, f"{floor}{unit + 1:02d}", (north, east)


def moved(centre: tuple[Decimal, Decimal], north_m: float, east_m: float) -> tuple[Decimal, Decimal]:
    """The point ``north_m`` north and ``east_m`` east of ``centre``, rounded to six decimals."""
    latitude, longitude = float(centre[0]), float(centre[1])
    lat = latitude + north_m / METRES_PER_DEGREE
    lon = longitude + east_m / (METRES_PER_DEGREE * math.cos(math.radians(latitude)))
    return Decimal(repr(lat)).quantize(_PLACES), Decimal(repr(lon)).quantize(_PLACES)


def fleet_sites(prefix: str, centre: tuple[Decimal, Decimal],
                buildings: Sequence[Sequence[str]]) -> dict[str, Site]:
    """Each meter id's site; ``buildings`` lists the meter ids behind each DTU, one DTU per building."""
    sites = {}
    for index, meter_ids in enumerate(buildings):
        name = building_name(prefix, index)
        middle = moved(centre, *building_offset_m(index, len(buildings)))
        for position, meter_id in enumerate(meter_ids):
            _, room, (north, east) = room_offset_m(position)
            latitude, longitude = moved(middle, north, east)
            sites[meter_id] = Site(name, room, f"{name}, Room {room}", latitude, longitude)
    return sites
