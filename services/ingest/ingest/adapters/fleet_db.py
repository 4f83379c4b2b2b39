"""Set-based queries on the meters' state: each with its connection and last report, the map, the counts.

The rule of ingest.core.fleet_state is one SQL expression here (``_meter_connection``), joined over
the registry, the DTU link rows and the meters' last reports, so a count over a city's million
meters is a GROUP BY in the database, never a loop over them in Python. Gateways and SIM cards:
fleet_network_db.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from amiflow_schemas.events.registry import MeterStatus, ScheduleKind
from amiflow_schemas.primitives import Utility
from sqlalchemy import Float, Select, and_, case, cast, func, null, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from ingest.adapters.gateway_db import gateway_connections
from ingest.adapters.registry_db import CHUNK
from ingest.adapters.registry_rows import meter_from_row
from ingest.adapters.registry_tables import registry_gateways, registry_meters
from ingest.adapters.reports_db import READING_COLUMNS, STATUS_COLUMNS, meter_last_reports
from ingest.core.fleet_state import Horizons, LinkState, MeterConnection, MeterGroup
from ingest.core.registry import Meter

_M, _C, _R = registry_meters.c, gateway_connections.c, meter_last_reports.c
_meter_gateway = registry_gateways.alias("meter_gateway")
_MG = _meter_gateway.c
_ACTIVE = MeterStatus.ACTIVE.value
# The DTU or concentrator whose link carries a meter: its gateway, or that gateway's parent (a collector's).
_LINK_GATEWAY = func.coalesce(_MG.parent_gateway_id, _M.gateway_id)


@dataclass(frozen=True)
class MeterSearch:
    """What a front desk narrows the meters by; None leaves a criterion out."""

    text: str | None = None  # meter id prefix, or part of the bus address, premise, room or building
    utility: Utility | None = None
    status: MeterStatus | None = None
    building: str | None = None
    gateway_id: str | None = None  # hanging on exactly this gateway
    behind_gateway_id: str | None = None  # on this gateway or on a collector hanging on it
    on_gateway: bool | None = None  # False: read over HTTP, behind no gateway
    connection: MeterConnection | None = None
    located: bool | None = None


@dataclass(frozen=True)
class LastReport:
    """What ingest last heard from a meter (reports_db), as the row holds it."""

    reading_received_at: Any
    reading_measured_at: Any
    status_reported_at: Any
    valve: str | None
    relay: str | None
    battery_level: str | None
    battery_voltage_v: Decimal | None
    battery_remaining_percent: int | None
    alarms: tuple[str, ...]
    clock_drift_s: int | None
    signal_csq: int | None


@dataclass(frozen=True)
class MeterRecord:
    """A meter with its connection state now, the gateway whose link carries it, and its last report."""

    meter: Meter
    connection: MeterConnection | None  # None: removed, not expected to report
    link_gateway_id: str | None
    report: LastReport | None


@dataclass(frozen=True)
class Position:
    meter_id: str
    utility: str
    latitude: Decimal
    longitude: Decimal
    building: str | None
    status: str
    connection: MeterConnection | None


@dataclass(frozen=True)
class Bounds:
    """The box around every located meter of a search, and how many there are."""

    min_lat: Decimal
    min_lon: Decimal
    max_lat: Decimal
    max_lon: Decimal
    located: int


def link_live(h: Horizons) -> ColumnElement[bool]:
    """A link row that says online and was refreshed within LINK_RECORD_MAX_AGE."""
    return and_(_C.online.is_(True), _C.last_seen_at >= h.link_seen_since)


def link_state(h: Horizons) -> ColumnElement[Any]:
    """The LinkState of the joined link row (none: never connected)."""
    return case((_C.gateway_id.is_(None), LinkState.NEVER_CONNECTED.value), (link_live(h), LinkState.ONLINE.value),
                else_=LinkState.OFFLINE.value)


def _meter_connection(h: Horizons) -> ColumnElement[Any]:
    """The connection rule of ingest.core.fleet_state as one CASE over the joins of ``_with_state``."""
    behind_gateway, heard = _M.gateway_id.is_not(None), _R.reading_received_at
    hourly = _M.schedule_kind == ScheduleKind.HOURLY.value
    other = or_(_M.schedule_kind.is_(None), _M.schedule_kind != ScheduleKind.HOURLY.value)
    return case(
        (_M.status != _ACTIVE, null()),
        (and_(behind_gateway, _C.gateway_id.is_(None)), MeterConnection.NEVER_SEEN.value),
        (and_(behind_gateway, link_live(h)), MeterConnection.ONLINE.value),
        (behind_gateway, MeterConnection.OFFLINE.value),
        (heard.is_(None), MeterConnection.NEVER_SEEN.value),
        (or_(and_(hourly, heard >= h.hourly_reading_since), and_(other, heard >= h.other_reading_since)),
         MeterConnection.ONLINE.value),
        else_=MeterConnection.OFFLINE.value)


def _with_state() -> Any:
    """Meters joined with their gateway, the link row of the gateway carrying them and their last report."""
    return (registry_meters
            .outerjoin(_meter_gateway, and_(_MG.tenant_id == _M.tenant_id, _MG.gateway_id == _M.gateway_id))
            .outerjoin(gateway_connections, and_(_C.tenant_id == _M.tenant_id, _C.gateway_id == _LINK_GATEWAY))
            .outerjoin(meter_last_reports, and_(_R.tenant_id == _M.tenant_id, _R.meter_id == _M.meter_id)))


def _source(search: MeterSearch) -> Any:
    """The meters alone when ``search`` needs none of the joins (counts over a city are then a scan of one table)."""
    return _with_state() if search.connection is not None or search.behind_gateway_id is not None else registry_meters


def _criteria(tenant_id: str, search: MeterSearch, h: Horizons) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [_M.tenant_id == tenant_id]
    if search.text:
        found.append(_text_matches(search.text))
    for column, value in ((_M.utility, search.utility), (_M.status, search.status), (_M.building, search.building),
                          (_M.gateway_id, search.gateway_id)):
        if value is not None:
            found.append(column == str(value))  # an enum's value
    if search.behind_gateway_id is not None:
        found.append(or_(_M.gateway_id == search.behind_gateway_id, _MG.parent_gateway_id == search.behind_gateway_id))
    if search.on_gateway is not None:
        found.append(_M.gateway_id.is_not(None) if search.on_gateway else _M.gateway_id.is_(None))
    if search.connection is not None:
        found.append(_meter_connection(h) == search.connection.value)
    if search.located is not None:
        found.append(_M.latitude.is_not(None) if search.located else _M.latitude.is_(None))
    return found


def _text_matches(text: str) -> ColumnElement[bool]:
    words = text.strip().lower()
    address = "".join(text.split()).upper()  # as registry_text.nameplate_address stores it
    return or_(func.lower(_M.meter_id).startswith(words, autoescape=True),
               _M.bus_address.contains(address, autoescape=True),
               *(func.lower(column).contains(words, autoescape=True) for column in (_M.premise, _M.room, _M.building)))


def _meter_columns(h: Horizons) -> Select[Any]:
    reports = [_R[name] for name in (*READING_COLUMNS, *STATUS_COLUMNS)]
    return select(registry_meters, _meter_connection(h).label("connection"),
                  case((_M.gateway_id.is_(None), null()), else_=_LINK_GATEWAY).label("link_gateway_id"),
                  _R.meter_id.label("reported_meter_id"), *reports).select_from(_with_state())


def _record(row: Any) -> MeterRecord:
    report = None if row.reported_meter_id is None else LastReport(
        row.reading_received_at, row.reading_measured_at, row.status_reported_at, row.valve, row.relay,
        row.battery_level, row.battery_voltage_v.normalize() if row.battery_voltage_v is not None else None,
        row.battery_remaining_percent,
        tuple(a for a in (row.alarms or "").split(",") if a), row.clock_drift_s, row.signal_csq)
    connection = MeterConnection(row.connection) if row.connection else None
    return MeterRecord(meter_from_row(row), connection, row.link_gateway_id, report)


async def meter_page(session: AsyncSession, tenant_id: str, search: MeterSearch, h: Horizons, *,
                     after: str | None, limit: int) -> list[MeterRecord]:
    """A page of the meters matching ``search``, in id order after ``after``, with their state."""
    query = _meter_columns(h).where(*_criteria(tenant_id, search, h)).order_by(_M.meter_id).limit(limit)
    if after is not None:
        query = query.where(_M.meter_id > after)
    return [_record(row) for row in await session.execute(query)]


async def meter_records(session: AsyncSession, tenant_id: str, meter_ids: Iterable[str],
                        h: Horizons) -> dict[str, MeterRecord]:
    """The named meters with their state (any status)."""
    wanted, found = sorted(set(meter_ids)), dict[str, MeterRecord]()
    for start in range(0, len(wanted), CHUNK):
        query = _meter_columns(h).where(_M.tenant_id == tenant_id, _M.meter_id.in_(wanted[start:start + CHUNK]))
        found.update((row.meter_id, _record(row)) for row in await session.execute(query))
    return found


async def meter_total(session: AsyncSession, tenant_id: str, search: MeterSearch, h: Horizons) -> int:
    """How many meters match ``search`` (every page together)."""
    query = select(func.count()).select_from(_source(search)).where(*_criteria(tenant_id, search, h))
    return int((await session.execute(query)).scalar_one())


async def meters_on(session: AsyncSession, tenant_id: str, gateway_ids: Iterable[str],
                    h: Horizons) -> list[MeterRecord]:
    """The active meters hanging directly on any of these gateways, by id."""
    wanted, records = sorted(set(gateway_ids)), []
    for start in range(0, len(wanted), CHUNK):
        query = _meter_columns(h).where(_M.tenant_id == tenant_id, _M.status == _ACTIVE,
                                        _M.gateway_id.in_(wanted[start:start + CHUNK]))
        records += [_record(row) for row in await session.execute(query)]
    return sorted(records, key=lambda r: r.meter.meter_id)


async def meters_behind(session: AsyncSession, tenant_id: str, gateway_id: str, h: Horizons) -> list[MeterRecord]:
    """The active meters on the gateway and on the collectors hanging on it, by id, with their state."""
    search = MeterSearch(status=MeterStatus.ACTIVE, behind_gateway_id=gateway_id)
    query = _meter_columns(h).where(*_criteria(tenant_id, search, h)).order_by(_M.meter_id)
    return [_record(row) for row in await session.execute(query)]


async def meter_counts_on(session: AsyncSession, tenant_id: str, gateway_ids: Iterable[str]) -> dict[str, int]:
    """How many active meters hang directly on each of these gateways (absent: none)."""
    wanted, counts = sorted(set(gateway_ids)), dict[str, int]()
    for start in range(0, len(wanted), CHUNK):
        query = (select(_M.gateway_id, func.count()).where(_M.tenant_id == tenant_id, _M.status == _ACTIVE,
                                                           _M.gateway_id.in_(wanted[start:start + CHUNK]))
                 .group_by(_M.gateway_id))
        counts.update((row[0], int(row[1])) for row in await session.execute(query))
    return counts


# --- the map ------------------------------------------------------------------------------------

async def positions(session: AsyncSession, tenant_id: str, search: MeterSearch, h: Horizons, *,
                    after: str | None, limit: int) -> list[Position]:
    """A page of located meters in id order, with the few fields a map marker needs."""
    located = replace(search, located=True)
    query = (select(_M.meter_id, _M.utility, _M.latitude, _M.longitude, _M.building, _M.status,
                    _meter_connection(h).label("connection")).select_from(_with_state())
             .where(*_criteria(tenant_id, located, h)).order_by(_M.meter_id).limit(limit))
    if after is not None:
        query = query.where(_M.meter_id > after)
    return [Position(row.meter_id, row.utility, row.latitude.normalize(), row.longitude.normalize(), row.building,
                     row.status, MeterConnection(row.connection) if row.connection else None)
            for row in await session.execute(query)]


async def bounds(session: AsyncSession, tenant_id: str, search: MeterSearch, h: Horizons) -> Bounds | None:
    """The box around the located meters of ``search``; None when none is located."""
    located = replace(search, located=True)
    # SQLite keeps exact decimals as text, whose MIN is alphabetical: compare as numbers. A float holds
    # the 12 significant digits a stored coordinate has, and its shortest text gives them back exactly.
    lat, lon = cast(_M.latitude, Float), cast(_M.longitude, Float)
    query = (select(func.min(lat), func.min(lon), func.max(lat), func.max(lon), func.count())
             .select_from(_source(located)).where(*_criteria(tenant_id, located, h)))
    row = (await session.execute(query)).one()
    if not row[4]:
        return None
    min_lat, min_lon, max_lat, max_lon = (Decimal(repr(float(value))).normalize() for value in row[:4])
    return Bounds(min_lat, min_lon, max_lat, max_lon, located=int(row[4]))


# --- the overview -------------------------------------------------------------------------------

async def meter_groups(session: AsyncSession, tenant_id: str, h: Horizons) -> list[MeterGroup]:
    """The tenant's meters counted by status, utility, connection and whether read today."""
    read_today = case((_R.reading_received_at >= h.local_midnight, 1), else_=0)
    # Grouped over a subquery: PostgreSQL would not take the CASE's bound instants in SELECT and GROUP BY
    # (numbered apart) for the same expression.
    each = (select(_M.status, _M.utility, _meter_connection(h).label("connection"), read_today.label("read_today"))
            .select_from(_with_state()).where(_M.tenant_id == tenant_id).subquery())
    keys = (each.c.status, each.c.utility, each.c.connection, each.c.read_today)
    rows = await session.execute(select(*keys, func.count()).group_by(*keys))
    return [MeterGroup(MeterStatus(row[0]), row[1], MeterConnection(row[2]) if row[2] else None, bool(row[3]),
                       int(row[4])) for row in rows]
