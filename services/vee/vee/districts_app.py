"""The daily district job: each district metered area's water balance and minimum night flow per local
day, from the consumption buckets the readings already maintain; alarms when a day closes.

Days are re-evaluated for a week after they close, so late readings and estimates replaced by actuals
change the figures (the API shows the latest); alarms look at each day once, when its balance is first
firm, so a late figure never flaps an alarm that operators are already working on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from amiflow_runtime.clock import Clock
from amiflow_runtime.db import lock_for_transaction
from amiflow_runtime.outbox import stage
from amiflow_schemas import Envelope
from amiflow_schemas.events.registry import MeterStatus
from amiflow_schemas.primitives import Utility
from sqlalchemy.ext.asyncio import AsyncSession

from vee.adapters import alarms_db, db, districts_db, registry_db, rules_db, series_db
from vee.core.aggregation import Bucket, GroupBucket
from vee.core.district import assess_day, evaluate_district
from vee.core.events import alarm_event
from vee.core.grid import DAY, Granularity, local_date, local_midnight, seconds
from vee.core.rules import ObjectGroups
from vee.series_app import Cause, Zones, outgoing

log = logging.getLogger("vee.districts")
REVISIT_DAYS = 7  # closed days re-evaluated for late data
BASELINE_NIGHTS = 7  # the rolling minimum-night-flow baseline (UKWIR)


async def evaluate_districts(sessions: Any, clock: Clock, zones: Zones, wake_relay: Callable[[], None],
                             close_delay: timedelta) -> int:
    """Evaluate every district's recent closed days; returns how many alarm events went out."""
    async with sessions() as session:
        known = await districts_db.listing(session)
    published = 0
    for district in known:
        async with sessions() as session, session.begin():
            published += await evaluate_district_days(session, district, clock.now(),
                                                      ZoneInfo(zones(district["tenant_id"])), close_delay)
    if published:
        wake_relay()
    return published


def closed_days(now: datetime, zone: ZoneInfo, close_delay: timedelta) -> list[date]:
    """The last REVISIT_DAYS local days that ended at least close_delay ago, oldest first."""
    last = local_date(now - close_delay, zone) - timedelta(days=1)
    return [last - timedelta(days=n) for n in range(REVISIT_DAYS - 1, -1, -1)]


async def evaluate_district_days(session: AsyncSession, district: dict[str, Any], now: datetime, zone: ZoneInfo,
                                 close_delay: timedelta) -> int:
    tenant, district_id = district["tenant_id"], district["district_id"]
    await lock_for_transaction(session, tenant, "district", district_id)
    inflow, customers = await _district_series(session, tenant, district_id, district["inflow_meter_ids"])
    days = closed_days(now, zone, close_delay)
    since, until = local_midnight(days[0], zone), local_midnight(days[-1] + DAY, zone)
    buckets = await _buckets(session, tenant, inflow, customers, since, until)
    recorded = await districts_db.days(session, tenant, district_id, days[0] - timedelta(days=BASELINE_NIGHTS),
                                       days[-1])
    evaluated = {r["day"] for r in recorded if r["alarms_evaluated"]}
    night_minimums = districts_db.minimums(recorded)
    timeline = (await rules_db.rule_set(session, tenant)).timeline(ObjectGroups(district=district_id))
    state = await districts_db.load_state(session, tenant, district_id)
    events: list[Envelope[Any]] = []
    for day in days:
        start, end = local_midnight(day, zone), local_midnight(day + DAY, zone)
        previous = [night_minimums[d] for d in sorted(night_minimums)
                    if day - timedelta(days=BASELINE_NIGHTS) <= d < day]
        assessed = assess_day(day, zone, _inflow_day(buckets, inflow, start, end),
                              _group(buckets["customer_day"], start), _inflow_hours(buckets["inflow_hour"], inflow),
                              [_as_group(r, Granularity.HOUR) for r in buckets["customer_hour"]], len(customers),
                              district["population"], previous, timeline)
        if assessed.night is not None:
            night_minimums[day] = assessed.night.minimum_night_flow
        # A day without a firm balance (inflow incomplete, too few actual reads) says nothing about the
        # alarms: it neither raises nor clears; it is looked at once late data makes it firm.
        firm = assessed.balance is not None and not assessed.balance.provisional
        look = firm and day not in evaluated
        await districts_db.record_day(session, tenant, district_id, assessed, start, end, len(customers),
                                      day in evaluated or firm, now)
        if look:
            state, facts = evaluate_district(state, tenant, assessed.balance, assessed.night, timeline, now)
            for fact in facts:
                payload = alarm_event(fact, Utility.WATER)
                await alarms_db.apply(session, tenant, payload)
                events.append(outgoing(payload, Cause(tenant), payload.subject_id, now, now))
    await districts_db.save_state(session, tenant, state)
    await stage(session, db.outbox, events, now)
    return len(events)


async def _district_series(session: AsyncSession, tenant: str, district_id: str,
                           inflow_meter_ids: list[str]) -> tuple[list[str], list[str]]:
    """The inflow meters' series and the customer meters' series (active members, not the inflow)."""
    inflow = sorted({await registry_db.series_of(session, tenant, m) for m in inflow_meter_ids})
    members = await registry_db.meters_in_group(session, tenant, "district_metered_area", district_id)
    customers = {await registry_db.series_of(session, tenant, m.meter_id) for m in members
                 if m.status is MeterStatus.ACTIVE}
    return inflow, sorted(customers - set(inflow))


async def _buckets(session: AsyncSession, tenant: str, inflow: list[str], customers: list[str], since: datetime,
                   until: datetime) -> dict[str, list[dict[str, Any]]]:
    night_from = since - timedelta(days=1)  # a night's hours fall inside its own local day; margin for DST
    return {
        "inflow_day": await series_db.group_buckets(session, tenant, inflow, Granularity.DAY.value, since, until),
        "customer_day": await series_db.group_buckets(session, tenant, customers, Granularity.DAY.value, since,
                                                      until),
        "inflow_hour": await series_db.group_buckets(session, tenant, inflow, Granularity.HOUR.value, night_from,
                                                     until),
        "customer_hour": await series_db.group_buckets(session, tenant, customers, Granularity.HOUR.value,
                                                       night_from, until),
    }


def _inflow_day(buckets: dict[str, list[dict[str, Any]]], inflow: list[str], start: datetime,
                end: datetime) -> Bucket | None:
    """The district's inflow on a day, complete only when every inflow meter covered the whole day."""
    row = next((r for r in buckets["inflow_day"] if r["start"] == start), None)
    if row is None or not inflow:
        return None
    complete = row["complete_meters"] == len(inflow)
    estimated = Decimal(0) if row["actual_meters"] == len(inflow) else Decimal(1)
    return Bucket(Granularity.DAY, start, end, row["consumption"], seconds(end - start) if complete else Decimal(0),
                  estimated)


def _inflow_hours(rows: list[dict[str, Any]], inflow: list[str]) -> list[Bucket]:
    # Night flow is read from actual inflow hours only: an estimated night is a profile, not a measurement.
    return [Bucket(Granularity.HOUR, r["start"], r["end"], r["consumption"],
                   seconds(r["end"] - r["start"]) if r["actual_meters"] == len(inflow) else Decimal(0), Decimal(0))
            for r in rows]


def _as_group(row: dict[str, Any], granularity: Granularity) -> GroupBucket:
    return GroupBucket(granularity, row["start"], row["end"], row["consumption"], row["meters"],
                       row["actual_meters"])


def _group(rows: list[dict[str, Any]], start: datetime) -> GroupBucket | None:
    return next((_as_group(r, Granularity.DAY) for r in rows if r["start"] == start), None)
