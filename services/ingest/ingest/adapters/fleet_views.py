"""What the API answers about the fleet's state: meters with their connection and last report, gateway links.

The connection rule is ingest.core.fleet_state's; these are its shapes on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_schemas.events.devices import BatteryStatus, DeviceAlarmFlag
from amiflow_schemas.events.registry import GatewayKind, MaintenanceState
from amiflow_schemas.primitives import RelayState, ValveState
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.adapters import fleet_network_db
from ingest.adapters.fleet_db import LastReport, MeterRecord
from ingest.adapters.registry_views import MeterView, meter_view
from ingest.core.fleet_state import Horizons, LinkState, MeterConnection, horizons
from ingest.core.registry import Gateway

CONNECTION_RULE = (
    "`connection`: a meter behind a gateway is `online` while the DTU or concentrator carrying it (its gateway, or "
    "its collector's parent: `link_gateway_id`) holds its link now (the link row says online and was refreshed "
    "within 120 s); `offline` when that link is down; `never_seen` when it never connected. A meter without a "
    "gateway is `online` when ingest accepted a reading of it within twice its schedule's interval (hourly: 2 h; "
    "daily, push or none: 48 h), `offline` after that, `never_seen` when no reading of it was ever accepted. "
    "A removed meter has no connection state (null) and is never counted offline.")


class DeviceStatusView(BaseModel):
    """The meter's latest device status report (valve, relay, battery, alarms), kept by the time it was reported."""

    reported_at: AwareDatetime  # the device's clock when it has one, else the receive time
    valve: ValveState | None
    relay: RelayState | None
    battery: BatteryStatus | None
    alarms: list[DeviceAlarmFlag]
    clock_drift_s: int | None
    signal_csq: int | None


class MeterStateView(MeterView):
    """A meter with what ingest knows of it now (all these fields are computed, never stored by a client)."""

    connection: MeterConnection | None = Field(default=None, description=CONNECTION_RULE)
    online: bool = False  # connection == "online"
    link_gateway_id: str | None = None  # the DTU or concentrator whose link carries the meter
    last_reading_received_at: AwareDatetime | None = None  # when ingest last accepted a reading of it
    last_reading_measured_at: AwareDatetime | None = None  # the latest instant one was measured at
    device_status: DeviceStatusView | None = None  # None: no status reported since ingest kept them


def horizons_of(runtime: Any, tenant_id: str) -> Horizons:
    """The connection rule's instants now, in the tenant's time zone."""
    return horizons(runtime.clock.now(), ZoneInfo(runtime.settings.zone_of(tenant_id)))


def status_view(report: LastReport | None) -> dict[str, Any] | None:
    if report is None or report.status_reported_at is None:
        return None
    battery = None if report.battery_level is None else {
        "level": report.battery_level, "voltage_v": report.battery_voltage_v,
        "remaining_percent": report.battery_remaining_percent}
    return {"reported_at": report.status_reported_at, "valve": report.valve, "relay": report.relay,
            "battery": battery, "alarms": list(report.alarms), "clock_drift_s": report.clock_drift_s,
            "signal_csq": report.signal_csq}


def state_fields(record: MeterRecord) -> dict[str, Any]:
    """The computed fields of MeterStateView, for a record's meter."""
    report = record.report
    return {"connection": record.connection, "online": record.connection is MeterConnection.ONLINE,
            "link_gateway_id": record.link_gateway_id,
            "last_reading_received_at": report.reading_received_at if report else None,
            "last_reading_measured_at": report.reading_measured_at if report else None,
            "device_status": status_view(report)}


def meter_state_view(record: MeterRecord) -> dict[str, Any]:
    return {**meter_view(record.meter), **state_fields(record)}


async def gateway_links(session: AsyncSession, tenant_id: str, gateways: Iterable[Gateway],
                        h: Horizons) -> dict[str, LinkState | None]:
    """Each gateway's link: its own for a DTU or concentrator, its parent's for a collector; None when retired."""
    gateways = list(gateways)
    carriers = {g.gateway_id: g.details.parent_gateway_id if g.details.kind is GatewayKind.COLLECTOR
                else g.gateway_id for g in gateways if g.details.maintenance is not MaintenanceState.RETIRED}
    found = await fleet_network_db.link_states(session, tenant_id, (c for c in carriers.values() if c is not None), h)
    links: dict[str, LinkState | None] = {g.gateway_id: None for g in gateways}
    for gateway_id, carrier in carriers.items():
        links[gateway_id] = found.get(carrier, LinkState.NEVER_CONNECTED) if carrier else LinkState.NEVER_CONNECTED
    return links


def link_fields(link: LinkState | None) -> dict[str, Any]:
    """The computed fields of GatewayView."""
    return {"link_state": link, "online": None if link is None else link is LinkState.ONLINE}
