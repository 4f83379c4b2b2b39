"""Whether the fleet is reachable now: what "online" means for a meter and a gateway, and the counts.

Pure. The database evaluates the rule set-based (ingest.adapters.fleet_db) with the instants this
module derives from ``now``; here are the rule's parameters and the folds of its grouped counts.

A meter behind a gateway is **online** while the DTU or concentrator that carries it (its gateway,
or the parent of its collector) holds a link to the gateway now: the link's row says online and was
refreshed within LINK_RECORD_MAX_AGE (a gateway process that died without writing the disconnect
leaves a row that only ages). A meter without a gateway is read over HTTP: it is online when ingest
accepted a reading of it within twice its schedule's interval (hourly: 2 h; daily, push or no
schedule: 48 h — the registry's default schedule is daily). A meter whose carrier never connected,
or that never sent a reading, is **never_seen**: nothing is known of it, and it is not called
offline. A removed meter is not expected to report and has no connection state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from amiflow_schemas.events.registry import GatewayKind, MaintenanceState, MeterStatus, ScheduleKind

# The gateway refreshes every held link's row each 30 s (ingest.gateway.liveness.SEEN_RECORD_S);
# four missed refreshes mean the process holding the link is gone.
LINK_RECORD_MAX_AGE = timedelta(seconds=120)
READING_INTERVAL = {ScheduleKind.HOURLY: timedelta(hours=1), ScheduleKind.DAILY: timedelta(days=1)}
DEFAULT_READING_INTERVAL = timedelta(days=1)  # push meters and meters without a schedule (polled daily)
MISSED_INTERVALS = 2  # a reading may be one interval late before the meter counts as offline
SIM_EXPIRY_WARNING = timedelta(days=30)


class MeterConnection(StrEnum):
    """Whether a meter can be reached now (see the module's docstring)."""

    ONLINE = "online"
    OFFLINE = "offline"
    NEVER_SEEN = "never_seen"


class LinkState(StrEnum):
    """Whether a DTU's or concentrator's link to the gateway is held now."""

    ONLINE = "online"
    OFFLINE = "offline"
    NEVER_CONNECTED = "never_connected"


@dataclass(frozen=True)
class Horizons:
    """The instants the rule compares with: a link row seen since ``link_seen_since`` is live, and so on."""

    now: datetime
    link_seen_since: datetime
    hourly_reading_since: datetime
    other_reading_since: datetime  # daily, push or no schedule
    local_midnight: datetime  # the start of the tenant's day: "read today"
    today: date  # the tenant's date, for SIM card expiry

    @property
    def sim_warning_until(self) -> date:
        return self.today + SIM_EXPIRY_WARNING


def horizons(now: datetime, zone: ZoneInfo) -> Horizons:
    """The rule's instants at ``now`` (aware) for a tenant in ``zone``."""
    local = now.astimezone(zone)
    return Horizons(
        now=now,
        link_seen_since=now - LINK_RECORD_MAX_AGE,
        hourly_reading_since=now - reading_window(ScheduleKind.HOURLY),
        other_reading_since=now - reading_window(ScheduleKind.DAILY),
        local_midnight=datetime.combine(local.date(), time(0), tzinfo=zone),
        today=local.date(),
    )


def reading_window(schedule: ScheduleKind | None) -> timedelta:
    """How long after its last accepted reading a meter without a gateway still counts as online."""
    interval = READING_INTERVAL.get(schedule, DEFAULT_READING_INTERVAL) if schedule else DEFAULT_READING_INTERVAL
    return MISSED_INTERVALS * interval


# --- the overview: grouped counts folded into totals ---------------------------------------------

@dataclass(frozen=True)
class MeterGroup:
    """One row of the meters' GROUP BY: so many meters share these values."""

    status: MeterStatus
    utility: str
    connection: MeterConnection | None  # None for a removed meter
    read_today: bool
    count: int


@dataclass(frozen=True)
class MeterCounts:
    total: int = 0
    active: int = 0
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_utility: Mapping[str, int] = field(default_factory=dict)  # active meters
    online: int = 0
    offline: int = 0
    never_seen: int = 0
    read_today: int = 0  # active meters with a reading accepted since the tenant's midnight


def meter_counts(groups: Iterable[MeterGroup]) -> MeterCounts:
    """The meters' overview; online + offline + never_seen == active (removed meters are in none)."""
    by_status: Counter[str] = Counter({s.value: 0 for s in MeterStatus})
    by_utility: Counter[str] = Counter()
    by_connection: Counter[MeterConnection] = Counter()
    read_today = 0
    for group in groups:
        by_status[group.status.value] += group.count
        if group.status is not MeterStatus.ACTIVE:
            continue
        by_utility[group.utility] += group.count
        by_connection[group.connection or MeterConnection.NEVER_SEEN] += group.count
        read_today += group.count if group.read_today else 0
    return MeterCounts(
        total=sum(by_status.values()), active=by_status[MeterStatus.ACTIVE.value], by_status=dict(by_status),
        by_utility=dict(sorted(by_utility.items())), online=by_connection[MeterConnection.ONLINE],
        offline=by_connection[MeterConnection.OFFLINE], never_seen=by_connection[MeterConnection.NEVER_SEEN],
        read_today=read_today)


@dataclass(frozen=True)
class GatewayGroup:
    """One row of the gateways' GROUP BY."""

    kind: GatewayKind
    maintenance: MaintenanceState
    link: LinkState | None  # None for collectors, which never connect by themselves
    count: int


@dataclass(frozen=True)
class GatewayCounts:
    total: int = 0
    by_kind: Mapping[str, int] = field(default_factory=dict)
    by_maintenance: Mapping[str, int] = field(default_factory=dict)
    online: int = 0  # DTUs and concentrators not retired, by their link
    offline: int = 0
    never_connected: int = 0


def gateway_counts(groups: Iterable[GatewayGroup]) -> GatewayCounts:
    """The gateways' overview; only DTUs and concentrators that are not retired have a link to count."""
    by_kind: Counter[str] = Counter({k.value: 0 for k in GatewayKind})
    by_maintenance: Counter[str] = Counter({m.value: 0 for m in MaintenanceState})
    links: Counter[LinkState] = Counter()
    for group in groups:
        by_kind[group.kind.value] += group.count
        by_maintenance[group.maintenance.value] += group.count
        connects = group.kind is not GatewayKind.COLLECTOR and group.maintenance is not MaintenanceState.RETIRED
        if connects:
            links[group.link or LinkState.NEVER_CONNECTED] += group.count
    return GatewayCounts(total=sum(by_kind.values()), by_kind=dict(by_kind), by_maintenance=dict(by_maintenance),
                         online=links[LinkState.ONLINE], offline=links[LinkState.OFFLINE],
                         never_connected=links[LinkState.NEVER_CONNECTED])


class SimExpiry(StrEnum):
    EXPIRED = "expired"
    EXPIRING_SOON = "expiring_soon"  # within SIM_EXPIRY_WARNING
    VALID = "valid"
    UNKNOWN = "unknown"  # no expiry date registered


@dataclass(frozen=True)
class SimCardGroup:
    """One row of the SIM cards' GROUP BY."""

    in_gateway: bool
    expiry: SimExpiry
    over_quota: bool
    count: int


@dataclass(frozen=True)
class SimCardCounts:
    total: int = 0
    in_gateway: int = 0
    spare: int = 0  # not in any gateway
    expired: int = 0
    expiring_soon: int = 0
    over_quota: int = 0  # used_bytes at or above quota_bytes


def sim_card_counts(groups: Iterable[SimCardGroup]) -> SimCardCounts:
    total = in_gateway = expired = expiring = over_quota = 0
    for group in groups:
        total += group.count
        in_gateway += group.count if group.in_gateway else 0
        expired += group.count if group.expiry is SimExpiry.EXPIRED else 0
        expiring += group.count if group.expiry is SimExpiry.EXPIRING_SOON else 0
        over_quota += group.count if group.over_quota else 0
    return SimCardCounts(total, in_gateway, total - in_gateway, expired, expiring, over_quota)
