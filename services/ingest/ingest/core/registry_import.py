"""Bulk import: every row checked against the registry and the rows before it, all problems listed.

An import applies all of its rows or none. A market's operators fix a spreadsheet and upload it
again; half an import would leave them working out which rows went in. So the plan either holds
one RegistryUpdate for the whole file or, when any row is bad, every bad row with its line number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from amiflow_schemas.events.registry import GatewayKind, RegistryChange

from ingest.core.registry import (
    Gateway,
    GatewayDetails,
    Meter,
    MeterDetails,
    RegistryRefused,
    RegistryUpdate,
    SimCard,
    SimCardDetails,
    Topology,
    combined,
)
from ingest.core.registry_meters import register_meter, update_meter
from ingest.core.registry_network import register_gateway, register_sim_card, update_gateway, update_sim_card

D = TypeVar("D")


@dataclass(frozen=True)
class ImportRow(Generic[D]):
    """One data row of a file: its line number, the device id, and its details or why they are unreadable."""

    line: int
    device_id: str
    details: D | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowProblem:
    line: int
    device_id: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ImportPlan:
    """What an import would do, or why it cannot."""

    update: RegistryUpdate
    problems: tuple[RowProblem, ...]
    registered: int
    updated: int
    unchanged: int

    @property
    def acceptable(self) -> bool:
        return not self.problems


@dataclass
class _Tally:
    parts: list[RegistryUpdate] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"registered": 0, "updated": 0, "unchanged": 0})

    def count(self, part: RegistryUpdate) -> None:
        events = part.events
        kind = "unchanged" if not events else (
            "registered" if getattr(events[-1], "change", None) is RegistryChange.REGISTERED else "updated")
        self.counts[kind] += 1


def plan_meter_import(tenant_id: str, rows: Sequence[ImportRow[MeterDetails]], existing: Mapping[str, Meter],
                      topology: Topology) -> ImportPlan:
    """Register new meters and update known ones; ``topology`` absorbs the accepted rows."""
    meters = dict(existing)

    def decide(row: ImportRow[MeterDetails], details: MeterDetails) -> RegistryUpdate:
        current = meters.get(row.device_id)
        part = (register_meter(tenant_id, row.device_id, details, None, topology) if current is None
                else update_meter(current, details, topology))
        meters.update((m.meter_id, m) for m in part.meters)
        return part

    return _plan(rows, decide, topology)


def plan_gateway_import(tenant_id: str, rows: Sequence[ImportRow[GatewayDetails]], existing: Mapping[str, Gateway],
                        topology: Topology) -> ImportPlan:
    """Register and update gateways; DTUs and concentrators go first so collectors find their parents."""
    gateways = dict(existing)

    def decide(row: ImportRow[GatewayDetails], details: GatewayDetails) -> RegistryUpdate:
        current = gateways.get(row.device_id)
        part = (register_gateway(tenant_id, row.device_id, details, None, topology) if current is None
                else update_gateway(current, details, topology))
        gateways.update((g.gateway_id, g) for g in part.gateways)
        return part

    def parents_first(row: ImportRow[GatewayDetails]) -> tuple[bool, int]:
        return (row.details is None or row.details.kind is GatewayKind.COLLECTOR, row.line)

    ordered = sorted(rows, key=parents_first)
    return _plan(ordered, decide, topology, parent_of=lambda d: d.parent_gateway_id)


def plan_sim_card_import(tenant_id: str, rows: Sequence[ImportRow[SimCardDetails]], existing: Mapping[str, SimCard],
                         topology: Topology, now: datetime) -> ImportPlan:
    """Register and update SIM cards; a card bound to a gateway takes the place of the card in it."""
    cards = dict(existing)

    def decide(row: ImportRow[SimCardDetails], details: SimCardDetails) -> RegistryUpdate:
        current = cards.get(row.device_id)
        part = (register_sim_card(tenant_id, row.device_id, details, None, topology, now) if current is None
                else update_sim_card(current, details, topology, now))
        cards.update((c.iccid, c) for c in part.sim_cards)
        return part

    return _plan(rows, decide, topology)


def _plan(rows: Iterable[ImportRow[D]], decide: Callable[[ImportRow[D], D], RegistryUpdate], topology: Topology,
          parent_of: Callable[[D], str | None] = lambda _: None) -> ImportPlan:
    tally = _Tally()
    first_line: dict[str, int] = {}
    failed: dict[str, int] = {}
    for row in rows:
        problems = list(row.problems)
        if row.device_id in first_line:
            problems.append(f"{row.device_id} is also on line {first_line[row.device_id]}")
        first_line.setdefault(row.device_id, row.line)
        parent = parent_of(row.details) if row.details is not None else None
        if parent in failed:  # say where the root cause is, not just "not registered"
            problems.append(f"parent_gateway_id: gateway {parent} on line {failed[parent]} has problems")
        if not problems and row.details is not None:
            problems = _apply(row, row.details, decide, topology, tally)
        if problems:
            failed.setdefault(row.device_id, row.line)
            tally.problems.append(RowProblem(row.line, row.device_id, tuple(problems)))
    return ImportPlan(combined(tally.parts), tuple(sorted(tally.problems, key=lambda p: p.line)), **tally.counts)


def _apply(row: ImportRow[D], details: D, decide: Callable[[ImportRow[D], D], RegistryUpdate], topology: Topology,
           tally: _Tally) -> list[str]:
    try:
        part = decide(row, details)
    except RegistryRefused as exc:
        return list(exc.reasons)
    topology.absorb(part)
    tally.parts.append(part)
    tally.count(part)
    return []
