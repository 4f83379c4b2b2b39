"""What "online" is measured against, and how the grouped counts become the console's overview."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from amiflow_schemas.events.registry import GatewayKind, MaintenanceState, MeterStatus, ScheduleKind
from ingest.core.fleet_state import (
    GatewayCounts,
    GatewayGroup,
    LinkState,
    MeterConnection,
    MeterCounts,
    MeterGroup,
    SimCardGroup,
    SimExpiry,
    gateway_counts,
    horizons,
    meter_counts,
    reading_window,
    sim_card_counts,
)

NOW = datetime(2026, 11, 21, 17, 30, tzinfo=UTC)  # 01:30 on the 22nd in Shanghai


def test_the_horizons_follow_the_link_refresh_the_schedules_and_the_tenants_day() -> None:
    h = horizons(NOW, ZoneInfo("Asia/Shanghai"))

    assert h.link_seen_since == NOW - timedelta(seconds=120)
    assert h.hourly_reading_since == NOW - timedelta(hours=2)
    assert h.other_reading_since == NOW - timedelta(hours=48)
    assert h.local_midnight == datetime(2026, 11, 21, 16, 0, tzinfo=UTC) and h.today == date(2026, 11, 22)
    assert h.sim_warning_until == date(2026, 12, 22)


def test_push_and_unscheduled_meters_are_held_to_the_daily_window() -> None:
    assert reading_window(ScheduleKind.HOURLY) == timedelta(hours=2)
    assert reading_window(ScheduleKind.DAILY) == reading_window(ScheduleKind.PUSH) == reading_window(None) \
        == timedelta(hours=48)


def test_removed_meters_are_counted_by_status_but_never_as_offline() -> None:
    counts = meter_counts([
        MeterGroup(MeterStatus.ACTIVE, "water", MeterConnection.ONLINE, True, 5),
        MeterGroup(MeterStatus.ACTIVE, "water", MeterConnection.OFFLINE, False, 2),
        MeterGroup(MeterStatus.ACTIVE, "electricity", MeterConnection.NEVER_SEEN, False, 1),
        MeterGroup(MeterStatus.ACTIVE, "electricity", MeterConnection.ONLINE, True, 3),
        MeterGroup(MeterStatus.REMOVED, "water", None, True, 4),
    ])

    assert counts == MeterCounts(total=15, active=11, by_status={"active": 11, "removed": 4},
                                 by_utility={"electricity": 4, "water": 7}, online=8, offline=2, never_seen=1,
                                 read_today=8)
    assert counts.online + counts.offline + counts.never_seen == counts.active


def test_an_empty_tenant_counts_zero_of_every_status_and_kind() -> None:
    assert meter_counts([]).by_status == {"active": 0, "removed": 0}
    assert gateway_counts([]) == GatewayCounts(total=0, by_kind={"dtu": 0, "concentrator": 0, "collector": 0},
                                               by_maintenance={"in_service": 0, "maintenance": 0, "retired": 0})


def test_only_connecting_gateways_in_service_or_maintenance_count_by_their_link() -> None:
    counts = gateway_counts([
        GatewayGroup(GatewayKind.DTU, MaintenanceState.IN_SERVICE, LinkState.ONLINE, 3),
        GatewayGroup(GatewayKind.DTU, MaintenanceState.MAINTENANCE, LinkState.OFFLINE, 1),
        GatewayGroup(GatewayKind.CONCENTRATOR, MaintenanceState.IN_SERVICE, LinkState.NEVER_CONNECTED, 2),
        GatewayGroup(GatewayKind.DTU, MaintenanceState.RETIRED, LinkState.OFFLINE, 7),
        GatewayGroup(GatewayKind.COLLECTOR, MaintenanceState.IN_SERVICE, None, 4),
    ])

    assert (counts.total, counts.online, counts.offline, counts.never_connected) == (17, 3, 1, 2)
    assert counts.by_kind == {"dtu": 11, "concentrator": 2, "collector": 4}
    assert counts.by_maintenance == {"in_service": 9, "maintenance": 1, "retired": 7}


def test_sim_cards_are_counted_by_binding_expiry_and_quota() -> None:
    counts = sim_card_counts([
        SimCardGroup(True, SimExpiry.VALID, False, 10),
        SimCardGroup(True, SimExpiry.EXPIRING_SOON, True, 2),
        SimCardGroup(False, SimExpiry.EXPIRED, False, 3),
        SimCardGroup(False, SimExpiry.UNKNOWN, True, 1),
    ])

    assert (counts.total, counts.in_gateway, counts.spare) == (16, 12, 4)
    assert (counts.expired, counts.expiring_soon, counts.over_quota) == (3, 2, 3)
