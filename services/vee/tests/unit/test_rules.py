"""Effective-dated rule versions per object group: data is checked with the version valid at its time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from amiflow_schemas.events.readings import ValidationStatus
from vee.core.model import Check
from vee.core.rules import DEFAULT_RULE, ObjectGroups, RuleSet, RuleVersion, VeeParameters

H = timedelta(hours=1)
D = timedelta(days=1)
T0 = datetime(2026, 3, 2, tzinfo=UTC)
RESIDENTIAL = ObjectGroups(customer_type="residential", meter_model="cjt188-water-2004", district="DMA-7")


ANY = ObjectGroups()


def _version(rule_id: str, since: datetime, scope: ObjectGroups = ANY, **parameters) -> RuleVersion:
    return RuleVersion(rule_id=rule_id, effective_from=since, scope=scope, parameters=VeeParameters(**parameters))


def test_without_versions_the_spec_defaults_apply():
    rule = RuleSet(tenant_id="demo").resolve(RESIDENTIAL, T0)
    assert rule is DEFAULT_RULE and rule.parameters.spike_ratio == 3
    assert rule.parameters.interpolation_limit == 2 * H and rule.parameters.like_days == 3


def test_a_version_applies_from_its_date_on_and_the_older_one_before():
    rules = RuleSet(tenant_id="demo", versions=(
        _version("spike@2026-01", datetime(2026, 1, 1, tzinfo=UTC), spike_ratio=Decimal("1.2")),
        _version("spike@2026-03", T0, spike_ratio=Decimal("1.5"))))
    assert rules.resolve(RESIDENTIAL, T0 - H).rule_id == "spike@2026-01"
    assert rules.resolve(RESIDENTIAL, T0).rule_id == "spike@2026-03"
    assert rules.resolve(RESIDENTIAL, datetime(2025, 12, 31, tzinfo=UTC)) is DEFAULT_RULE


def test_the_most_specific_matching_scope_wins_then_the_latest():
    rules = RuleSet(tenant_id="demo", versions=(
        _version("tenant@2026-03", T0),
        _version("residential@2026-01", datetime(2026, 1, 1, tzinfo=UTC), ObjectGroups(customer_type="residential")),
        _version("dma7@2026-02", datetime(2026, 2, 1, tzinfo=UTC), ObjectGroups(district="DMA-7")),
        _version("dma7-res@2026-02", datetime(2026, 2, 1, tzinfo=UTC),
                 ObjectGroups(district="DMA-7", customer_type="residential")),
        _version("commercial@2026-03", T0, ObjectGroups(customer_type="commercial"))))
    assert rules.resolve(RESIDENTIAL, T0).rule_id == "dma7-res@2026-02"
    assert rules.resolve(ObjectGroups(customer_type="residential", district="DMA-9"), T0).rule_id == \
        "residential@2026-01"
    assert rules.resolve(ObjectGroups(district="DMA-7"), T0).rule_id == "dma7@2026-02"
    assert rules.resolve(ObjectGroups(customer_type="industrial"), T0).rule_id == "tenant@2026-03"


def _spiky_days(m):
    register = Decimal(100)
    m.read(T0, register)
    for hour in range(1, 49):  # two days with one 5-unit hour after 1-unit hours: 5 / 1 = 5
        register += Decimal(5) if hour % 24 == 12 else Decimal(1)
        m.read(T0 + hour * H, register)


def test_each_reading_is_checked_with_the_rule_version_of_its_own_timestamp(meter):
    tolerant = T0 + D
    m = meter(rules=RuleSet(tenant_id="demo", versions=(
        _version("spike-3@2026-01", datetime(2026, 1, 1, tzinfo=UTC)),
        _version("spike-6@2026-03-03", tolerant, spike_ratio=Decimal(6)))))
    _spiky_days(m)
    before, after = m.point(T0 + 12 * H), m.point(tolerant + 12 * H)
    assert (before.status, Check.SPIKE in before.checks, before.rule_id) == (
        ValidationStatus.ESTIMATED, True, "spike-3@2026-01")
    assert (after.status, after.checks, after.rule_id) == (ValidationStatus.ACTUAL, (), "spike-6@2026-03-03")
