"""Fleets: built the same from the same seed, ids and addresses fit the registry, the CSV import bodies
pass the registry's own parser and planner (and import again as unchanged), registration retries
until the API answers, and the delivery ledger counts readings as the head-end keys them."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from ingest.adapters.registry_csv import GATEWAYS, METERS, gateway_cells, meter_cells, read_rows
from ingest.core.protocols import RegisterReading
from ingest.core.protocols.bcd import wire_address
from ingest.core.registry import Topology
from ingest.core.registry_import import ImportPlan, plan_gateway_import, plan_meter_import
from ingest.simulator import Delivery, Fleet, FleetSpec, Ledger, MeterKind, RegistrationFailed, ReplyKind
from ingest.simulator.fleet import kinds_of, registration_id

SPEC = FleetSpec(meters=60, dtus=4, seed=3, prefix="T1", tenant="market", leak_rate=0.2, push_rate=0.1)


def test_the_same_seed_builds_the_same_fleet_and_another_seed_another() -> None:
    one, two = Fleet.build(SPEC), Fleet.build(SPEC)
    other = Fleet.build(FleetSpec(meters=60, dtus=4, seed=4, prefix="T1", tenant="market"))

    assert (one.csv_gateways(), one.csv_meters()) == (two.csv_gateways(), two.csv_meters())
    assert one.csv_meters() != other.csv_meters()
    at = datetime(2026, 11, 21, 3, tzinfo=UTC)
    assert [m.spec.curve.used(at) for m in one.meters.values()] == [m.spec.curve.used(at) for m in two.meters.values()]


def test_ids_follow_the_prefix_and_the_mix_is_kept() -> None:
    fleet = Fleet.build(FleetSpec(meters=1000, dtus=50))
    counts = Counter(m.spec.kind for m in fleet.meters.values())

    assert counts == {MeterKind.WATER: 500, MeterKind.GAS: 150, MeterKind.HEAT: 100, MeterKind.ELECTRICITY: 250}
    assert min(fleet.dtus) == "SIM-DTU-0001" and max(fleet.dtus) == "SIM-DTU-0050" and len(fleet.dtus) == 50
    assert {"SIM-WM-00001", "SIM-WM-00500", "SIM-GM-00150", "SIM-HM-00100", "SIM-EM-00250"} <= set(fleet.meters)
    assert all(len(dtu.meters) == 20 for dtu in fleet.dtus.values())


def test_odd_mixes_round_to_the_meter_count() -> None:
    kinds = kinds_of(FleetSpec(meters=7, mix=((MeterKind.WATER, 1), (MeterKind.GAS, 1), (MeterKind.HEAT, 1))))

    assert len(kinds) == 7 and sorted(Counter(kinds).values()) == [2, 2, 3]


def test_bus_addresses_are_unique_full_length_and_never_look_like_a_frame_start() -> None:
    fleet = Fleet.build(FleetSpec(meters=2000, dtus=5))

    for dtu in fleet.dtus.values():
        addresses = [m.bus_address for m in dtu.meters]
        assert len(set(addresses)) == len(addresses)
    for meter in fleet.meters.values():
        size = 6 if meter.spec.kind is MeterKind.ELECTRICITY else 7
        assert len(meter.bus_address) == 2 * size and 0x68 not in wire_address(meter.bus_address, size)


def test_registration_ids_are_imei_like_and_differ_per_tenant() -> None:
    ids = [registration_id(SPEC, f"T1-DTU-{n:04d}") for n in range(1, 200)]
    other_tenant = registration_id(FleetSpec(tenant="another", seed=3, prefix="T1"), "T1-DTU-0001")

    assert all(len(i) == 15 and i.isdigit() and i.startswith("86") and luhn_ok(i) for i in ids)
    assert len(set(ids)) == len(ids) and other_tenant != ids[0]


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in reversed(number)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def plan(fleet: Fleet, existing_gateways: dict, existing_meters: dict) -> tuple[ImportPlan, ImportPlan]:
    """Both files through the registry's CSV reader and import planner, as the import handler runs them."""
    topology = Topology()
    for meter in existing_meters.values():
        topology.place(meter)
    gateway_sheet = read_rows(fleet.csv_gateways(), GATEWAYS, 100_000)
    gateway_rows = [GATEWAYS.import_row(line, {**(gateway_cells(existing_gateways[c["gateway_id"]])
                                                  if c["gateway_id"] in existing_gateways else {}), **c})
                    for line, c in gateway_sheet.rows]
    gateways = plan_gateway_import("market", gateway_rows, existing_gateways, topology)
    meter_sheet = read_rows(fleet.csv_meters(), METERS, 100_000)
    meter_rows = [METERS.import_row(line, {**(meter_cells(existing_meters[c["meter_id"]])
                                              if c["meter_id"] in existing_meters else {}), **c})
                  for line, c in meter_sheet.rows]
    assert gateway_sheet.problems == meter_sheet.problems == ()
    return gateways, plan_meter_import("market", meter_rows, existing_meters, topology)


def test_the_csv_bodies_pass_the_registry_import_and_import_again_unchanged() -> None:
    fleet = Fleet.build(SPEC)
    gateways, meters = plan(fleet, {}, {})

    assert gateways.problems == () and meters.problems == ()
    assert (gateways.registered, meters.registered) == (4, 60)
    stored_meters = {m.meter_id: m for m in meters.update.meters}
    assert stored_meters["T1-WM-00001"].details.profile == "cjt188-water-2004"
    assert {m.details.schedule.kind.value for m in stored_meters.values()} == {"hourly", "push"}

    again_gateways, again_meters = plan(Fleet.build(SPEC), {g.gateway_id: g for g in gateways.update.gateways},
                                        stored_meters)
    assert (again_gateways.unchanged, again_meters.unchanged) == (4, 60)
    assert again_gateways.update.events == again_meters.update.events == ()


def report(kind: str, registered: int) -> dict:
    return {"kind": kind, "dry_run": False, "applied": True, "rows": registered, "registered": registered,
            "updated": 0, "unchanged": 0, "problems": []}


async def test_register_retries_until_the_api_answers_and_sends_gateways_before_meters() -> None:
    fleet = Fleet.build(FleetSpec(meters=3, dtus=1, tenant="market"))
    seen: list[httpx.Request] = []
    answers = iter(["down", 503, 200, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer == "down":
            raise httpx.ConnectError("connection refused", request=request)
        seen.append(request)
        kind = request.url.params["kind"]
        return httpx.Response(answer, json=report(kind, 1 if kind == "gateways" else 3) if answer == 200 else {})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        outcomes = await fleet.register("http://api.test/", client=client, deadline_s=10)

    assert [(o.kind, o.registered) for o in outcomes] == [("gateways", 1), ("meters", 3)]
    sent = seen[1:]
    assert [r.url.path for r in sent] == ["/v1/registry/import"] * 2
    assert [dict(r.url.params) for r in sent] == [{"kind": "gateways", "dry_run": "false"},
                                                  {"kind": "meters", "dry_run": "false"}]
    assert all(r.headers["content-type"] == "text/csv" and r.headers["x-tenant-id"] == "market" for r in sent)
    assert [r.content.decode() for r in sent] == [fleet.csv_gateways(), fleet.csv_meters()]


async def test_register_stops_at_rows_with_problems() -> None:
    problems = {**report("gateways", 0), "applied": False,
                "problems": [{"line": 2, "device_id": "SIM-DTU-0001", "reasons": ["registration_id: taken"]}]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, content=json.dumps(problems))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistrationFailed, match="line 2 SIM-DTU-0001: registration_id: taken"):
            await Fleet.build(FleetSpec(meters=1, dtus=1)).register("http://api.test", client=client)


async def test_register_gives_up_at_the_deadline() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistrationFailed, match="did not succeed in time"):
            await Fleet.build(FleetSpec(meters=1, dtus=1)).register("http://api.test", client=client, deadline_s=0.2)


def delivery(meter_id: str, clock: datetime | None, value: str) -> Delivery:
    registers = (RegisterReading("total", Decimal(value), "m3"),)  # type: ignore[arg-type]
    at = clock or datetime(2026, 11, 21, tzinfo=UTC)
    return Delivery(meter_id, "D", ReplyKind.READING, "901F", at, clock, registers, "", at)


def test_the_ledger_counts_readings_as_the_head_end_keys_them() -> None:
    ledger = Ledger()
    t = datetime(2026, 11, 21, 8, tzinfo=UTC)
    for entry in (delivery("A", t, "1.00"), delivery("A", t, "1.00"), delivery("A", t + timedelta(seconds=1), "1.01"),
                  delivery("B", None, "5.00"), delivery("B", None, "5.00")):
        ledger.record(entry)
    ledger.record(Delivery("A", "D", ReplyKind.VALVE, "A017", t, None, (), "", t))

    assert len(ledger) == 6 and len(ledger.readings()) == 5
    assert [(d.meter_id, d.values["total"]) for d in ledger.distinct_readings()] == [
        ("A", Decimal("1.00")), ("A", Decimal("1.01")), ("B", Decimal("5.00")), ("B", Decimal("5.00"))]
    assert len(ledger.for_meter("A")) == 4


def test_a_spec_refuses_what_cannot_be_registered() -> None:
    with pytest.raises(ValueError, match="prefix"):
        FleetSpec(prefix="bad prefix")
    with pytest.raises(ValueError, match="at least one"):
        FleetSpec(meters=0)


def test_addresses_skip_a_68_pair_in_one_step_and_refuse_a_head_that_has_one() -> None:
    from ingest.simulator.fleet import _AddressRun

    run = _AddressRun("", 12, 68 * 10**8)  # "006800000000": the whole 68xxxxxxxx block is unusable
    assert next(run) == "006900000000"
    assert next(run) == "006900000001"
    straddling = _AddressRun("1236", 4, 8000)  # "12368000": the pair "68" spans nothing here, "36","80" are fine
    assert next(straddling) == "12368000"
    late = _AddressRun("1234", 4, 6799)
    assert [next(late) for _ in range(2)] == ["12346799", "12346900"]
    with pytest.raises(ValueError, match="68 byte"):
        next(_AddressRun("6812", 4, 0))
    full = _AddressRun("12", 2, 99)
    assert next(full) == "1299"
    with pytest.raises(ValueError, match="no 2-digit address left"):
        next(full)
