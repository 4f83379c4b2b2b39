"""Decisions on the network meters hang on: gateways, their topology, and their SIM cards."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from amiflow_schemas.events.registry import GatewayKind, MaintenanceState, RegistryChange, SimCardAspect

from ingest.core.registry import (
    Gateway,
    GatewayDetails,
    RegistryConflict,
    RegistryRefused,
    RegistryUpdate,
    SimCard,
    SimCardDetails,
    SimCardRevision,
    Topology,
)
from ingest.core.registry_events import gateway_defined, sim_card_defined

# Changes a SIM card's history keeps; usage moves daily and lives in the current state only.
_HISTORY_ASPECTS = frozenset({SimCardAspect.CARD, SimCardAspect.NUMBER, SimCardAspect.PLAN})


def register_gateway(tenant_id: str, gateway_id: str, details: GatewayDetails, existing: Gateway | None,
                     topology: Topology) -> RegistryUpdate:
    """A new DTU, concentrator or collector at revision 1."""
    if existing is not None:
        raise RegistryConflict(f"gateway {gateway_id} is already registered")
    gateway = Gateway(tenant_id, gateway_id, details)
    return _decided(gateway, RegistryChange.REGISTERED, topology, was_retired=False)


def update_gateway(current: Gateway, details: GatewayDetails, topology: Topology) -> RegistryUpdate:
    """New details for a gateway (retiring it is one); the same details again change nothing."""
    if details == current.details:
        return RegistryUpdate()
    gateway = replace(current, details=details, revision=current.revision + 1)
    was_retired = current.details.maintenance is MaintenanceState.RETIRED
    return _decided(gateway, RegistryChange.UPDATED, topology, was_retired)


def _decided(gateway: Gateway, change: RegistryChange, topology: Topology, was_retired: bool) -> RegistryUpdate:
    conflicts = _registration_conflicts(gateway, topology)
    problems = [*_topology_problems(gateway, topology), *_retirement_problems(gateway, topology, was_retired)]
    try:
        event = gateway_defined(gateway, change)
    except RegistryRefused as exc:
        problems.extend(exc.reasons)
    if problems:
        raise RegistryRefused(*conflicts, *problems)
    if conflicts:
        raise RegistryConflict(*conflicts)
    return RegistryUpdate(gateways=(gateway,), events=(event,))


def _registration_conflicts(gateway: Gateway, topology: Topology) -> list[str]:
    # Registration ids are unique across tenants: the gateway knows nothing but this id when a
    # DTU connects, so it must name one gateway. The holder's tenant is not disclosed.
    registration = gateway.details.registration_id
    holder = topology.registrations.get(registration) if registration is not None else None
    if holder is not None and holder != (gateway.tenant_id, gateway.gateway_id):
        return [f"registration_id: {registration} is already used by another gateway"]
    return []


def _topology_problems(gateway: Gateway, topology: Topology) -> list[str]:
    """Collectors hang on a DTU or concentrator; those hang on nothing (two levels, no cycles)."""
    d = gateway.details
    if d.kind is not GatewayKind.COLLECTOR:
        problems = [] if d.parent_gateway_id is None else [
            f"parent_gateway_id: only a collector hangs on another gateway, not a {d.kind.value}"]
        return problems
    problems = []
    if d.registration_id is not None:
        problems.append("registration_id: a collector does not connect by itself, so it has no registration id")
    if topology.children_of(gateway.gateway_id):
        problems.append(f"kind: collectors hang on gateway {gateway.gateway_id}, so it cannot be a collector")
    parent = topology.gateways.get(d.parent_gateway_id) if d.parent_gateway_id is not None else None
    if d.parent_gateway_id is not None and parent is None:
        problems.append(f"parent_gateway_id: gateway {d.parent_gateway_id} is not registered")
    elif parent is not None and parent.details.kind is GatewayKind.COLLECTOR:
        problems.append(f"parent_gateway_id: {parent.gateway_id} is a collector; "
                        "a collector hangs on a DTU or a concentrator")
    elif parent is not None and parent.details.maintenance is MaintenanceState.RETIRED:
        problems.append(f"parent_gateway_id: gateway {parent.gateway_id} is retired")
    return problems


def _retirement_problems(gateway: Gateway, topology: Topology, was_retired: bool) -> list[str]:
    if was_retired or gateway.details.maintenance is not MaintenanceState.RETIRED:
        return []
    meters, children = topology.meters_on(gateway.gateway_id), len(topology.children_of(gateway.gateway_id))
    if meters or children:
        return [f"maintenance: {meters} active meter(s) and {children} collector(s) still hang on gateway "
                f"{gateway.gateway_id}; move them before retiring it"]
    return []


def register_sim_card(tenant_id: str, iccid: str, details: SimCardDetails, existing: SimCard | None,
                      topology: Topology, now: datetime) -> RegistryUpdate:
    """A new SIM card; bound to a gateway, it takes the place of the card that was in it."""
    if existing is not None:
        raise RegistryConflict(f"SIM card {iccid} is already registered")
    card = SimCard(tenant_id, iccid, details)
    _check_binding(card, topology)
    event = sim_card_defined(card, RegistryChange.REGISTERED, ())
    registered = RegistryUpdate(sim_cards=(card,), events=(event,),
                                sim_history=(SimCardRevision(card, RegistryChange.REGISTERED, (), now),))
    return _displaced(card, topology, now) + registered


def update_sim_card(current: SimCard, details: SimCardDetails, topology: Topology, now: datetime) -> RegistryUpdate:
    """New details for a SIM card: a new gateway (a card swap), number, plan or usage."""
    if details == current.details:
        return RegistryUpdate()
    changed = _aspects(current.details, details)
    card = replace(current, details=details, revision=current.revision + 1)
    _check_binding(card, topology)
    event = sim_card_defined(card, RegistryChange.UPDATED, changed)
    history = (SimCardRevision(card, RegistryChange.UPDATED, changed, now),) if _HISTORY_ASPECTS & set(changed) else ()
    updated = RegistryUpdate(sim_cards=(card,), events=(event,), sim_history=history)
    return _displaced(card, topology, now) + updated if SimCardAspect.CARD in changed else updated


def bind_sim_card(current: SimCard, gateway_id: str | None, topology: Topology, now: datetime) -> RegistryUpdate:
    """Put a card into a gateway (None: take it out); a card already in that gateway comes out."""
    return update_sim_card(current, replace(current.details, gateway_id=gateway_id), topology, now)


def _aspects(before: SimCardDetails, after: SimCardDetails) -> tuple[SimCardAspect, ...]:
    differs = {
        SimCardAspect.CARD: before.gateway_id != after.gateway_id,
        SimCardAspect.NUMBER: (before.msisdn, before.imsi) != (after.msisdn, after.imsi),
        SimCardAspect.PLAN: (before.carrier, before.data_plan, before.quota_bytes, before.expires_on)
        != (after.carrier, after.data_plan, after.quota_bytes, after.expires_on),
        SimCardAspect.USAGE: before.used_bytes != after.used_bytes,
    }
    return tuple(aspect for aspect, changed in differs.items() if changed)


def _check_binding(card: SimCard, topology: Topology) -> None:
    gateway_id = card.details.gateway_id
    if gateway_id is None:
        return
    gateway = topology.gateways.get(gateway_id)
    if gateway is None:
        raise RegistryRefused(f"gateway_id: gateway {gateway_id} is not registered")
    if gateway.details.maintenance is MaintenanceState.RETIRED:
        raise RegistryRefused(f"gateway_id: gateway {gateway_id} is retired")
    if gateway.details.kind is GatewayKind.COLLECTOR:
        raise RegistryRefused(f"gateway_id: {gateway_id} is a collector; SIM cards go into DTUs and concentrators")


def _displaced(card: SimCard, topology: Topology, now: datetime) -> RegistryUpdate:
    """The card that was in the gateway ``card`` now occupies comes out: a card change for both."""
    gateway_id = card.details.gateway_id
    previous = topology.cards_in.get(gateway_id) if gateway_id is not None else None
    if previous is None or previous.iccid == card.iccid:
        return RegistryUpdate()
    unbound = replace(previous, details=replace(previous.details, gateway_id=None), revision=previous.revision + 1)
    changed = (SimCardAspect.CARD,)
    return RegistryUpdate(sim_cards=(unbound,), events=(sim_card_defined(unbound, RegistryChange.UPDATED, changed),),
                          sim_history=(SimCardRevision(unbound, RegistryChange.UPDATED, changed, now),))
