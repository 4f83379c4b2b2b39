"""The device registry's decisions: given the registry, when a change, then new states and events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from uuid import UUID

import pytest
from amiflow_schemas import decode_event, encode_event
from amiflow_schemas.events.registry import (
    GatewayKind,
    MaintenanceState,
    MeterDefined,
    MeterReplaced,
    MeterStatus,
    RegistryChange,
    ScheduleKind,
    SimCardAspect,
    SimCardDefined,
)
from amiflow_schemas.primitives import Unit, Utility
from amiflow_schemas.topics import topic_for_event
from hypothesis import given
from hypothesis import strategies as st
from ingest.core.registry import (
    Gateway,
    GatewayDetails,
    Meter,
    MeterDetails,
    ReadSchedule,
    RegistryConflict,
    RegistryRefused,
    SimCard,
    SimCardDetails,
    Topology,
    registry_envelopes,
)
from ingest.core.registry_meters import MeterSwap, register_meter, remove_meter, replace_meter, update_meter
from ingest.core.registry_network import (
    bind_sim_card,
    register_gateway,
    register_sim_card,
    update_gateway,
    update_sim_card,
)
from ingest.core.registry_text import format_read_schedule, parse_di_order, parse_read_schedule

T = "t1"
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
WATER = MeterDetails(Utility.WATER, "cjt188-water-2004", "00000012345678", Unit.M3, gateway_id="COL-1",
                     schedule=ReadSchedule(ScheduleKind.DAILY, time(1, 0), 1800))
DTU = Gateway(T, "DTU-1", GatewayDetails(GatewayKind.DTU, registration_id="861234567890123"))
COLLECTOR = Gateway(T, "COL-1", GatewayDetails(GatewayKind.COLLECTOR, parent_gateway_id="DTU-1", channel="1"))


def network(*meters: Meter, cards: tuple[SimCard, ...] = ()) -> Topology:
    topology = Topology()
    for gateway in (DTU, COLLECTOR):
        topology.add_gateway(gateway)
    for meter in meters:
        topology.place(meter)
    for card in cards:
        topology.bind(card)
    return topology


def registered(meter_id: str = "WM-1", details: MeterDetails = WATER) -> Meter:
    return register_meter(T, meter_id, details, None, network()).meters[0]


def swap(**changes: object) -> MeterSwap:
    fields: dict[str, object] = dict(new_meter_id="WM-2", new_bus_address="00000087654321", removed_at=NOW,
                                     removal_reading=Decimal("102.40"), installed_at=NOW + timedelta(minutes=20),
                                     installation_reading=Decimal("0.01"))
    return MeterSwap(**{**fields, **changes})  # type: ignore[arg-type]


# --- meters -------------------------------------------------------------------------------------

def test_registering_a_meter_announces_its_whole_state_at_revision_one() -> None:
    update = register_meter(T, "WM-1", WATER, None, network())

    (event,) = update.events
    assert isinstance(event, MeterDefined)
    assert (event.device_key, event.revision, event.change) == ("t1/meter/WM-1", 1, RegistryChange.REGISTERED)
    assert event.meter.bus_address == "00000012345678" and event.meter.schedule is not None
    assert event.meter.schedule.at_local == "01:00" and event.meter.status is MeterStatus.ACTIVE
    assert update.meters == (Meter(T, "WM-1", WATER),)


def test_every_problem_of_a_meter_is_reported_at_once() -> None:
    bad = replace(WATER, unit=Unit.KWH, bus_address="12G4", profile="no spaces allowed")

    with pytest.raises(RegistryRefused) as refused:
        register_meter(T, "WM-1", bad, None, network())

    text = "\n".join(refused.value.reasons)
    assert "kWh is not a water unit" in text and "bus_address" in text and "profile" in text


def test_a_meter_id_registered_twice_is_a_conflict() -> None:
    with pytest.raises(RegistryConflict, match="already registered"):
        register_meter(T, "WM-1", WATER, registered(), network())


def test_a_meter_needs_a_registered_gateway_that_is_in_service() -> None:
    with pytest.raises(RegistryRefused, match="gateway DTU-9 is not registered"):
        register_meter(T, "WM-1", replace(WATER, gateway_id="DTU-9"), None, network())
    topology = network()
    topology.add_gateway(replace(COLLECTOR, details=replace(COLLECTOR.details, maintenance=MaintenanceState.RETIRED)))
    with pytest.raises(RegistryRefused, match="COL-1 is retired"):
        register_meter(T, "WM-1", WATER, None, topology)


def test_a_bus_address_is_unique_behind_the_root_gateway_including_its_collectors() -> None:
    on_collector = registered("WM-1")
    on_dtu = replace(WATER, gateway_id="DTU-1")

    with pytest.raises(RegistryConflict, match="already used by meter WM-1 behind gateway DTU-1"):
        register_meter(T, "WM-2", on_dtu, None, network(on_collector))
    removed = remove_meter(on_collector, NOW, None).meters[0]
    assert register_meter(T, "WM-2", on_dtu, None, network(removed)).meters  # a removed meter frees its address


def test_updating_with_the_same_details_changes_nothing_and_announces_nothing() -> None:
    meter = registered()

    assert update_meter(meter, WATER, network(meter)).events == ()


def test_an_update_raises_the_revision_and_keeps_the_meter_on_its_own_address() -> None:
    meter = registered()

    update = update_meter(meter, replace(WATER, multiplier=Decimal("0.01"), dial_count=8), network(meter))

    (event,) = update.events
    assert isinstance(event, MeterDefined)
    assert (event.revision, event.change, event.meter.multiplier) == (2, RegistryChange.UPDATED, Decimal("0.01"))


def test_a_meter_cannot_change_its_utility() -> None:
    meter = registered()
    gas = replace(WATER, utility=Utility.GAS)

    with pytest.raises(RegistryRefused, match="utility cannot change"):
        update_meter(meter, gas, network(meter))


def test_a_removed_meter_is_kept_as_it_was_removed() -> None:
    removed = remove_meter(registered(), NOW, Decimal("7.5")).meters[0]

    assert update_meter(removed, WATER, network()).events == ()  # the same row again, e.g. a re-import
    with pytest.raises(RegistryConflict, match="was removed"):
        update_meter(removed, replace(WATER, room="12"), network())
    with pytest.raises(RegistryConflict, match="was removed"):
        remove_meter(removed, NOW, None)


def test_removal_announces_the_removed_state_with_its_last_reading() -> None:
    (event,) = remove_meter(registered(), NOW, Decimal("7.5")).events

    assert isinstance(event, MeterDefined) and event.change is RegistryChange.REMOVED
    assert event.meter.status is MeterStatus.REMOVED and event.meter.removal is not None
    assert (event.meter.removal.removed_at, event.meter.removal.removal_reading) == (NOW, Decimal("7.5"))


def test_a_replacement_carries_the_old_meters_final_state_and_both_readings() -> None:
    old = registered()

    update = replace_meter(old, swap(), None, network(old))

    replaced, defined = update.events
    assert isinstance(replaced, MeterReplaced) and isinstance(defined, MeterDefined)
    assert replaced.device_key == "t1/meter/WM-1" and replaced.revision == 2
    assert replaced.meter.status is MeterStatus.REMOVED and replaced.meter.profile == "cjt188-water-2004"
    assert replaced.replacement.removal_reading == Decimal("102.40")
    assert replaced.replacement.installation_reading == Decimal("0.01")
    assert (defined.device_key, defined.revision, defined.meter.replaces_meter_id) == ("t1/meter/WM-2", 1, "WM-1")
    assert defined.meter.installed_at == NOW + timedelta(minutes=20)
    assert defined.meter.gateway_id == "COL-1" and defined.meter.bus_address == "00000087654321"


def test_a_like_for_like_replacement_may_reuse_the_old_address() -> None:
    old = registered()

    update = replace_meter(old, swap(new_bus_address=WATER.bus_address), None, network(old))

    assert [m.status for m in update.meters] == [MeterStatus.REMOVED, MeterStatus.ACTIVE]


def test_a_replacement_needs_an_active_old_meter_a_new_id_and_installation_after_removal() -> None:
    old = registered()
    with pytest.raises(RegistryConflict, match="already registered"):
        replace_meter(old, swap(), registered("WM-2", replace(WATER, gateway_id=None)), network(old))
    with pytest.raises(RegistryRefused, match="before the old one was removed"):
        replace_meter(old, swap(installed_at=NOW - timedelta(seconds=1)), None, network(old))
    with pytest.raises(RegistryConflict, match="was removed"):
        replace_meter(remove_meter(old, NOW, None).meters[0], swap(), None, network())


def test_envelopes_are_keyed_by_tenant_kind_and_id_and_share_one_correlation() -> None:
    old = registered()
    update = replace_meter(old, swap(), None, network(old))
    ids = (UUID(int=n) for n in count(1))

    envelopes = registry_envelopes(T, update, ids, NOW)

    assert [e.key for e in envelopes] == ["t1/meter/WM-1", "t1/meter/WM-2"]
    assert {e.correlation_id for e in envelopes} == {UUID(int=1)}
    assert {topic_for_event(e.event_type).name for e in envelopes} == {"amiflow.registry.devices"}
    assert [decode_event(encode_event(e)) for e in envelopes] == envelopes


def test_a_tenant_and_id_too_long_for_a_kafka_key_are_refused() -> None:
    with pytest.raises(RegistryRefused, match="registry key allows"):
        register_meter("t" * 64, "M" * 64, replace(WATER, gateway_id=None), None, network())


# --- gateways -----------------------------------------------------------------------------------

def test_a_collector_hangs_on_a_dtu_or_concentrator_and_never_registers_itself() -> None:
    bad = GatewayDetails(GatewayKind.COLLECTOR, registration_id="X", parent_gateway_id="COL-1")

    with pytest.raises(RegistryRefused) as refused:
        register_gateway(T, "COL-2", bad, None, network())

    assert any("no registration id" in r for r in refused.value.reasons)
    assert any("COL-1 is a collector" in r for r in refused.value.reasons)


def test_only_collectors_have_parents() -> None:
    with pytest.raises(RegistryRefused, match="only a collector hangs on another gateway"):
        register_gateway(T, "DTU-2", GatewayDetails(GatewayKind.DTU, parent_gateway_id="DTU-1"), None, network())


def test_registration_ids_are_unique_across_tenants_without_naming_the_holder() -> None:
    topology = network()
    topology.registrations["861234567890123"] = ("other-tenant", "G")

    with pytest.raises(RegistryConflict, match="already used by another gateway") as conflict:
        register_gateway(T, "DTU-2", GatewayDetails(GatewayKind.DTU, registration_id="861234567890123"), None,
                         topology)
    assert "other-tenant" not in str(conflict.value)


def test_a_gateway_with_meters_or_collectors_cannot_retire() -> None:
    retire = replace(DTU.details, maintenance=MaintenanceState.RETIRED)

    with pytest.raises(RegistryRefused, match=r"1 active meter.* and 1 collector"):
        update_gateway(DTU, retire, network(replace(registered(), details=replace(WATER, gateway_id="DTU-1"))))


def test_firmware_updates_raise_the_revision() -> None:
    (event,) = update_gateway(DTU, replace(DTU.details, firmware="2.1.7"), network()).events

    assert (event.revision, event.change, event.gateway.firmware) == (2, RegistryChange.UPDATED, "2.1.7")


# --- SIM cards ----------------------------------------------------------------------------------

ICCID_A, ICCID_B = "89860412345678901234", "89860412345678905678"


def card(iccid: str = ICCID_A, **changes: object) -> SimCard:
    details = SimCardDetails(msisdn="1064812345678", carrier="China Mobile", data_plan="30 MB", gateway_id="DTU-1")
    return SimCard(T, iccid, replace(details, **changes))  # type: ignore[arg-type]


def test_a_new_card_in_a_gateway_takes_the_place_of_the_old_one_and_both_keep_history() -> None:
    old = card(ICCID_A)

    update = register_sim_card(T, ICCID_B, card(ICCID_B).details, None, network(cards=(old,)), NOW)

    unbound, bound = update.events
    assert isinstance(unbound, SimCardDefined) and isinstance(bound, SimCardDefined)
    assert (unbound.sim_card.iccid, unbound.sim_card.gateway_id, unbound.changed) == (
        ICCID_A, None, (SimCardAspect.CARD,))
    assert (bound.sim_card.gateway_id, bound.change) == ("DTU-1", RegistryChange.REGISTERED)
    assert [(h.card.iccid, h.card.revision) for h in update.sim_history] == [(ICCID_A, 2), (ICCID_B, 1)]


def test_number_and_plan_changes_are_history_and_usage_is_not() -> None:
    current = card()

    renumbered = update_sim_card(current, replace(current.details, msisdn="1064899999999", data_plan="100 MB"),
                                 network(cards=(current,)), NOW)
    used = update_sim_card(current, replace(current.details, used_bytes=1024), network(cards=(current,)), NOW)

    assert renumbered.sim_history[0].changed == (SimCardAspect.NUMBER, SimCardAspect.PLAN)
    assert used.events[0].changed == (SimCardAspect.USAGE,) and used.sim_history == ()  # type: ignore[union-attr]


def test_a_card_goes_into_dtus_and_concentrators_only() -> None:
    with pytest.raises(RegistryRefused, match="COL-1 is a collector"):
        bind_sim_card(card(), "COL-1", network(), NOW)
    assert bind_sim_card(card(), None, network(cards=(card(),)), NOW).sim_cards[0].details.gateway_id is None


# --- operator notation --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("daily 01:00 jitter 30m", ReadSchedule(ScheduleKind.DAILY, time(1, 0), 1800)),
    ("Daily at 23:59", ReadSchedule(ScheduleKind.DAILY, time(23, 59), 0)),
    ("hourly", ReadSchedule(ScheduleKind.HOURLY, None, 0)),
    ("hourly jitter 90s", ReadSchedule(ScheduleKind.HOURLY, None, 90)),
    ("push", ReadSchedule(ScheduleKind.PUSH, None, 0)),
])
def test_read_schedules_are_read_as_operators_write_them(text: str, expected: ReadSchedule) -> None:
    assert parse_read_schedule(text) == expected


@pytest.mark.parametrize("text", ["daily", "hourly 01:00", "push jitter 5m", "daily 24:00", "weekly", "daily 1:00 x"])
def test_schedules_that_make_no_sense_are_refused_with_the_forms_that_do(text: str) -> None:
    with pytest.raises(ValueError, match=r"daily|schedule|time|jitter"):
        parse_read_schedule(text)


@given(kind=st.sampled_from(ScheduleKind), minutes=st.integers(0, 24 * 60 - 1), jitter=st.integers(0, 86_400))
def test_a_written_schedule_reads_back_the_same(kind: ScheduleKind, minutes: int, jitter: int) -> None:
    at = time(minutes // 60, minutes % 60) if kind is ScheduleKind.DAILY else None
    schedule = ReadSchedule(kind, at, 0 if kind is ScheduleKind.PUSH else jitter)

    assert parse_read_schedule(format_read_schedule(schedule)) == schedule


def test_di_byte_order_is_read_with_or_without_spaces_in_either_case() -> None:
    assert parse_di_order("901f").value == "90 1F" and parse_di_order(" 1F 90 ").value == "1F 90"
    with pytest.raises(ValueError, match="'90 1F' or '1F 90'"):
        parse_di_order("9010")
