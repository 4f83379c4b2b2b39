"""A fleet simulator: virtual CJ/T 188 and DL/T 645 meters behind virtual DTUs, talking to the gateway.

    fleet = Fleet.build(FleetSpec(meters=200, dtus=10, seed=1, tenant="demo"))
    await fleet.register("http://127.0.0.1:8001")      # CSV import, idempotent, retried until the API answers
    await fleet.start("127.0.0.1", 9100)               # DTUs log in and answer polls in the background
    fleet.dtu("SIM-DTU-0001").drop_next_poll()         # script a mid-poll drop (store-and-forward)
    ...
    fleet.ledger.readings()                            # every reply written, with its registers
    await fleet.stop()

Modules: ``consumption`` (usage as a pure function of time), ``models`` / ``electricity`` (meter
state), ``replies`` (meter-side frames), ``bus`` (a request reaching the meters), ``dtu`` (the
modem: login, heartbeats, backlog, reconnects), ``ledger``, ``registration`` (CSV import),
``fleet`` and ``cli``.
"""

from ingest.simulator.dtu import DtuBehaviour, DtuStats, VirtualDtu
from ingest.simulator.electricity import ElectricityMeter, EnergyReading, Instant
from ingest.simulator.fleet import Fleet, FleetSpec, FleetSummary
from ingest.simulator.ledger import Delivery, Ledger
from ingest.simulator.models import (
    Cjt188Meter,
    FlowMeter,
    FlowReading,
    HeatMeter,
    HeatReading,
    MeterKind,
    MeterSpec,
    SimMeter,
    Traits,
    ValvePosition,
)
from ingest.simulator.registration import ImportOutcome, RegistrationFailed
from ingest.simulator.replies import Reply, ReplyKind

__all__ = [
    "Cjt188Meter",
    "Delivery",
    "DtuBehaviour",
    "DtuStats",
    "ElectricityMeter",
    "EnergyReading",
    "Fleet",
    "FleetSpec",
    "FleetSummary",
    "FlowMeter",
    "FlowReading",
    "HeatMeter",
    "HeatReading",
    "ImportOutcome",
    "Instant",
    "Ledger",
    "MeterKind",
    "MeterSpec",
    "RegistrationFailed",
    "Reply",
    "ReplyKind",
    "SimMeter",
    "Traits",
    "ValvePosition",
    "VirtualDtu",
]
