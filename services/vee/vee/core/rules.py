"""VEE rule versions: the check and estimation parameters, effective-dated per tenant and object group.

Data is checked with the rule version valid at its own timestamp, not at processing time (vee.md §0,
Oracle's spike tolerance 1.2 → 1.5 example). Defaults are the spec's test defaults (§6); those the
spec marks as suggested are ours too.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated

from amiflow_schemas.primitives import Identifier, NonNegativeDecimal, PositiveDecimal
from pydantic import AwareDatetime, Field, PositiveInt

from vee.core.stored import Stored

Share = Annotated[Decimal, Field(ge=0, le=1)]
"""A fraction from 0 to 1 (0.25 is 25 %)."""


class VeeParameters(Stored):
    """Every tunable of validation, estimation and alarms, with the spec's defaults."""

    # V3 clock tolerance [TRIL][CIRWATT]: silent fix, fix + flag, then invalid.
    clock_demand_tolerance: timedelta = timedelta(seconds=30)
    clock_silent_fix: timedelta = timedelta(minutes=5)
    clock_flag_limit: timedelta = timedelta(minutes=15)
    # V8 rollover: previous read in the top share of the dial range [CUR-ROLL] (suggested 10 %), and the
    # wrapped use at most this many times the typical use of the interval (T6: 3 x ADU).
    rollover_near_top_share: Share = Decimal("0.1")
    rollover_max_use_factor: PositiveDecimal = Decimal(3)
    # §4 reverse flow [NEP]: more than 1 count back is backflow, above 100 counts it is major.
    backflow_jitter_counts: NonNegativeDecimal = Decimal(1)
    backflow_major_counts: PositiveDecimal = Decimal(100)
    # A drop is believed to be backflow only up to this share of the interval's typical use (suggested).
    backflow_max_use_factor: PositiveDecimal = Decimal(1)
    # V9 stopped meter after N zero days (suggested 7).
    stopped_meter_days: PositiveInt = 7
    # V11 [CUR-THR]: high above 200 % of ADU and at least 5 units, low below 50 %.
    adu_window: timedelta = timedelta(days=30)
    adu_min_history: timedelta = timedelta(days=7)
    high_ratio: PositiveDecimal = Decimal(2)
    high_min_consumption: NonNegativeDecimal = Decimal(5)
    low_ratio: PositiveDecimal = Decimal("0.5")
    # V12 [ORA-SPK]: highest vs third-highest interval of a local day.
    spike_ratio: PositiveDecimal = Decimal(3)
    # V13 [TX-Q]: interval sum vs register delta within 2 x multiplier.
    sum_tolerance_multipliers: PositiveDecimal = Decimal(2)
    # V14 prolonged estimation (suggested 5 days = the Texas retry window).
    prolonged_estimation: timedelta = timedelta(days=5)
    # V15: changes smaller than both thresholds do not replace a published value [ORA-FMR].
    replacement_min_change: NonNegativeDecimal = Decimal(0)
    replacement_min_share: Share = Decimal(0)
    protect_manual_edits: bool = True
    # V16 [IEE-DQ]: hold the billing export above 2 % estimated or missing.
    billing_max_estimated_share: Share = Decimal("0.02")
    # E1: wait this long for an actual before estimating an open end [TX-MX].
    estimation_wait: timedelta = timedelta(days=5)
    # E4 [CA-VEE] and the longest gap the register is spread over (suggested).
    interpolation_limit: timedelta = timedelta(hours=2)
    max_estimated_gap: timedelta = timedelta(days=35)
    # E5 [IEE-HIST]: 3 like days, looked for this far back (IESO: 3 weeks; one more to skip a bad day).
    like_days: PositiveInt = 3
    like_day_lookback: timedelta = timedelta(weeks=4)
    # Leak [AQC-LEAK]: at least 1 L (0.001 m3) in every hour of 24.
    leak_min_hourly: NonNegativeDecimal = Decimal("0.001")
    leak_hours: PositiveInt = 24
    # Burst [KAM-BURST]: above 10 % of Q3 for 30 minutes.
    burst_q3_share: Share = Decimal("0.1")
    burst_duration: timedelta = timedelta(minutes=30)
    # No communication (suggested: two days of a daily meter).
    silence_limit: timedelta = timedelta(hours=48)
    # DMA (suggested): provisional below 98 % actual coverage; imbalance alarm above 25 % NRW.
    dma_min_actual_coverage: Share = Decimal("0.98")
    nrw_alarm_share: Share = Decimal("0.25")
    # Minimum night flow [I2O][UKWIR][SANF]: 02:00-04:00, 6 % active x 10 L, +25 % over baseline.
    night_start: time = time(2)
    night_end: time = time(4)
    night_active_share: Share = Decimal("0.06")
    night_use_per_active_m3: NonNegativeDecimal = Decimal("0.010")
    night_baseline_percentile: Annotated[int, Field(ge=0, le=100)] = 20
    night_rise_alarm_share: NonNegativeDecimal = Decimal("0.25")


class ObjectGroups(Stored):
    """A meter's object groups; as a rule version's scope, None in a field matches any meter."""

    customer_type: str | None = None
    meter_model: str | None = None
    district: str | None = None

    def matches(self, groups: ObjectGroups) -> bool:
        """True when every field this scope names equals the meter's groups."""
        return all(mine is None or mine == theirs for mine, theirs in (
            (self.customer_type, groups.customer_type), (self.meter_model, groups.meter_model),
            (self.district, groups.district)))

    def specificity(self) -> tuple[int, bool, bool, bool]:
        """More named fields win; on a tie district, then meter model, then customer type."""
        named = (self.district is not None, self.meter_model is not None, self.customer_type is not None)
        return sum(named), *named


class RuleVersion(Stored):
    """One version of the parameters, valid from an instant for one scope."""

    rule_id: Identifier  # e.g. "vee-water-residential@2026-01"; AlarmRaised.rule_id carries it
    effective_from: AwareDatetime
    scope: ObjectGroups = ObjectGroups()
    parameters: VeeParameters = VeeParameters()


DEFAULT_RULE = RuleVersion(rule_id="vee-defaults", effective_from=datetime(1970, 1, 1, tzinfo=UTC))


class RuleSet(Stored):
    """A tenant's rule versions; the spec's defaults apply where none matches."""

    tenant_id: Identifier
    versions: tuple[RuleVersion, ...] = ()

    def resolve(self, groups: ObjectGroups, at: datetime) -> RuleVersion:
        """The version for a meter's groups at a data timestamp: most specific scope, then the latest."""
        return self.timeline(groups).at(at)

    def timeline(self, groups: ObjectGroups) -> RuleTimeline:
        """The versions that can apply to a meter's groups, to resolve many timestamps quickly."""
        return RuleTimeline(tuple(v for v in self.versions if v.scope.matches(groups)))


class RuleTimeline:
    """A meter's applicable rule versions, best first: the first one already in force applies.

    Which version applies only changes at a version's ``effective_from``, so the answer is worked
    out once per span between those instants; a derivation asks for every slot several times.
    """

    def __init__(self, versions: tuple[RuleVersion, ...]) -> None:
        self._ranked = sorted(versions, key=lambda v: (v.scope.specificity(), v.effective_from, v.rule_id),
                              reverse=True)
        self._starts = sorted({v.effective_from for v in self._ranked})
        # _in_force[k]: the version from _starts[k - 1] on (k = 0: before every version).
        self._in_force = [DEFAULT_RULE, *(self._first_in_force(start) for start in self._starts)]

    def _first_in_force(self, instant: datetime) -> RuleVersion:
        return next((v for v in self._ranked if v.effective_from <= instant), DEFAULT_RULE)

    def at(self, instant: datetime) -> RuleVersion:
        """The rule version that governs data measured at ``instant``."""
        starts = self._starts
        if starts and instant >= starts[-1]:  # the usual case: data after the latest version began
            return self._in_force[-1]
        return self._in_force[bisect.bisect_right(starts, instant)]

    def parameters(self, instant: datetime) -> VeeParameters:
        """The parameters of the rule version in force at ``instant``."""
        return self.at(instant).parameters
