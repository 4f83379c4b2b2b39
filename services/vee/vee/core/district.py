"""District metered areas: the water balance against the sum of customer meters, and minimum night flow.

Both compare a district's inflow meter with its customers' meters over the same local window, so
the caller passes buckets of one aggregation (aligned day boundaries first, vee.md T16). Non-revenue
water is provisional while too few customer meters were actually read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from amiflow_schemas.events.alarms import AlarmSeverity, AlarmSubject, AlarmType, MeasureUnit
from amiflow_schemas.primitives import Identifier

from vee.core.aggregation import Bucket, GroupBucket
from vee.core.episodes import AlarmFact, Condition, Subject, reconcile_episodes
from vee.core.grid import HOUR, local_midnight, seconds
from vee.core.model import AlarmEpisode, EpisodeOrigin
from vee.core.rules import RuleTimeline, VeeParameters
from vee.core.stored import Stored


@dataclass(frozen=True, slots=True)
class WaterBalance:
    """A district's day (or other window): inflow, what customers used, and the rest [MLAB][IWA-WB]."""

    start: datetime
    end: datetime
    inflow: Decimal
    customer_use: Decimal
    non_revenue: Decimal
    non_revenue_share: Decimal
    actual_coverage: Decimal  # share of connected customer meters actually read in the window
    provisional: bool


def water_balance(inflow: Bucket, customers: GroupBucket, connected_meters: int,
                  parameters: VeeParameters) -> WaterBalance:
    """NRW = inflow - sum of customer use over the same window (T16: 1250 - 1020 = 230 m3 = 18.4 %)."""
    if (inflow.start, inflow.end) != (customers.start, customers.end):
        raise ValueError("the inflow and the customer sums must cover the same local window")
    non_revenue = inflow.consumption - customers.consumption
    share = non_revenue / inflow.consumption if inflow.consumption else Decimal(0)
    coverage = Decimal(customers.actual_meters) / Decimal(connected_meters) if connected_meters else Decimal(0)
    return WaterBalance(inflow.start, inflow.end, inflow.consumption, customers.consumption, non_revenue, share,
                        coverage, coverage < parameters.dma_min_actual_coverage)


@dataclass(frozen=True, slots=True)
class NightFlow:
    """One night's minimum night flow and what it says about leakage [I2O][UKWIR][SANF]."""

    hour_start: datetime
    minimum_night_flow: Decimal  # m3/h
    legitimate_night_use: Decimal  # m3/h
    net_night_flow: Decimal  # m3/h: leakage plus unmeasured night use
    baseline: Decimal | None
    rise: Decimal | None  # share above the baseline
    to_average_flow: Decimal | None  # MNF / the day's mean flow; below ~50 % suggests no major leak
    alarm: bool


def _rate(bucket: Bucket | GroupBucket) -> Decimal:
    return bucket.consumption * seconds(HOUR) / seconds(bucket.end - bucket.start)


def minimum_hour(inflow_hourly: Sequence[Bucket], night: date, zone: ZoneInfo,
                 parameters: VeeParameters) -> Bucket | None:
    """The complete inflow hour with the lowest flow inside the night window (02:00-04:00 local)."""
    start, end = local_midnight(night, zone, parameters.night_start), local_midnight(night, zone, parameters.night_end)
    inside = [b for b in inflow_hourly if start <= b.start and b.end <= end and b.complete]
    return min(inside, key=lambda b: (_rate(b), b.start), default=None)


def legitimate_night_use(customers_at_minimum: GroupBucket | None, population: int | None,
                         parameters: VeeParameters) -> Decimal:
    """Metered night use from AMI when there is some, else 6 % of the population x 10 L per hour [SANF]."""
    if customers_at_minimum is not None:
        return _rate(customers_at_minimum)
    if population is None:
        return Decimal(0)
    return population * parameters.night_active_share * parameters.night_use_per_active_m3


def night_flow_baseline(previous_minimums: Sequence[Decimal], parameters: VeeParameters) -> Decimal | None:
    """UKWIR's rolling baseline: a low percentile (20th) of the last nights' minimum flows (nearest rank)."""
    if not previous_minimums:
        return None
    ranked = sorted(previous_minimums)
    rank = (Decimal(parameters.night_baseline_percentile) / 100 * len(ranked)).to_integral_value(ROUND_CEILING)
    return ranked[max(int(rank), 1) - 1]


def assess_night(minimum: Bucket, customers_at_minimum: GroupBucket | None, population: int | None,
                 baseline: Decimal | None, day_inflow: Decimal | None, parameters: VeeParameters) -> NightFlow:
    """T17: MNF 16, AMI night use 4.2 → net 11.8 m3/h; 16 vs baseline 12 is +33 % > +25 % → alarm."""
    mnf = _rate(minimum)
    legitimate = legitimate_night_use(customers_at_minimum, population, parameters)
    rise = (mnf - baseline) / baseline if baseline else None
    average = day_inflow / 24 if day_inflow else None
    return NightFlow(minimum.start, mnf, legitimate, mnf - legitimate, baseline, rise,
                     mnf / average if average else None,
                     rise is not None and rise > parameters.night_rise_alarm_share)


def unavoidable_annual_real_losses(mains_km: Decimal, connections: int, private_pipe_km: Decimal,
                                   pressure_m: Decimal) -> Decimal:
    """UARL in litres per day: (18 Lm + 0.8 Nc + 25 Lp) x P (IWA task force; verify the coefficients, §7)."""
    return (18 * mains_km + Decimal("0.8") * connections + 25 * private_pipe_km) * pressure_m


class DistrictState(Stored):
    """A district's alarm episodes (one table row per district)."""

    district_id: Identifier
    episodes: tuple[AlarmEpisode, ...] = ()


def district_conditions(balance: WaterBalance | None, night: NightFlow | None,
                        timeline: RuleTimeline) -> list[Condition]:
    """The district conditions open now; provisional balances are not alarmed on."""
    found = []
    if balance is not None and not balance.provisional:
        limit = timeline.parameters(balance.start).nrw_alarm_share
        if balance.non_revenue_share > limit:
            found.append(Condition(AlarmType.DISTRICT_IMBALANCE, balance.start, balance.end, None,
                                   AlarmSeverity.WARNING, balance.non_revenue_share * 100, limit * 100,
                                   MeasureUnit.PERCENT, "non-revenue water above the district's limit",
                                   timeline.at(balance.start).rule_id, (balance.start, balance.end)))
    if night is not None and night.alarm and night.rise is not None:
        limit = timeline.parameters(night.hour_start).night_rise_alarm_share
        found.append(Condition(AlarmType.NIGHT_FLOW, night.hour_start, night.hour_start + HOUR, None,
                               AlarmSeverity.WARNING, night.minimum_night_flow, night.baseline, MeasureUnit.M3_PER_HOUR,
                               f"minimum night flow {night.minimum_night_flow} m3/h is {night.rise * 100:.0f} % above "
                               f"the baseline (limit {limit * 100:.0f} %)", timeline.at(night.hour_start).rule_id))
    return found


def evaluate_district(state: DistrictState, tenant_id: str, balance: WaterBalance | None, night: NightFlow | None,
                      timeline: RuleTimeline, as_of: datetime) -> tuple[DistrictState, list[AlarmFact]]:
    """Raise or clear the district's imbalance and night-flow alarms after one day's evaluation."""
    subject = Subject(tenant_id, AlarmSubject.DISTRICT, state.district_id)
    episodes, facts = reconcile_episodes(state.episodes, district_conditions(balance, night, timeline),
                                         EpisodeOrigin.DISTRICT, subject, as_of)
    return state.model_copy(update={"episodes": episodes}), facts


@dataclass(frozen=True, slots=True)
class DistrictDay:
    """One local day of a district: its water balance and its night, each None without the data."""

    day: date
    balance: WaterBalance | None
    night: NightFlow | None


def assess_day(day: date, zone: ZoneInfo, inflow_day: Bucket | None, customers_day: GroupBucket | None,
               inflow_hours: Sequence[Bucket], customer_hours: Sequence[GroupBucket], connected_meters: int,
               population: int | None, previous_minimums: Sequence[Decimal],
               timeline: RuleTimeline) -> DistrictDay:
    """The balance and minimum night flow of one local day, with the rule version of that day.

    Customers without a bucket count as using nothing but lower the actual coverage, so a day with
    many silent meters is provisional rather than an alarming loss.
    """
    parameters = timeline.parameters(local_midnight(day, zone))
    balance = None
    if inflow_day is not None and inflow_day.complete:
        start, end = inflow_day.start, inflow_day.end
        customers = customers_day or GroupBucket(inflow_day.granularity, start, end, Decimal(0), 0, 0)
        balance = water_balance(inflow_day, customers, connected_meters, parameters)
    night = None
    minimum = minimum_hour(inflow_hours, day, zone, parameters)
    if minimum is not None:
        at_minimum = next((h for h in customer_hours if h.start == minimum.start), None)
        # Metered night use only counts when nearly every customer meter read that hour.
        if at_minimum is not None and at_minimum.actual_meters < connected_meters * parameters.dma_min_actual_coverage:
            at_minimum = None
        night = assess_night(minimum, at_minimum, population, night_flow_baseline(previous_minimums, parameters),
                             balance.inflow if balance else None, parameters)
    return DistrictDay(day, balance, night)
