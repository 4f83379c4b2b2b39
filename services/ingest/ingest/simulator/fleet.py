"""A fleet: N virtual meters behind M virtual DTUs, all decided by a seed.

Device ids, bus addresses, registration ids, usage curves and traits come from the seed, the
prefix and (for registration ids) the tenant, so the same command line builds the same fleet and
registers identical rows. Meters sit in contiguous blocks behind their DTU, like a building's bus:
each DTU is a building on a grid around the spec's centre, its meters in its rooms (``sites``).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import ssl
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx

from ingest.simulator import registration
from ingest.simulator.consumption import SHAPES, UsageCurve, milli
from ingest.simulator.dtu import Clock, DtuBehaviour, VirtualDtu
from ingest.simulator.electricity import ElectricityMeter
from ingest.simulator.ledger import Ledger
from ingest.simulator.models import KINDS, FlowMeter, HeatMeter, MeterKind, MeterSpec, SimMeter, Traits
from ingest.simulator.sites import DEFAULT_CENTRE, Site, fleet_sites

DEFAULT_MIX = ((MeterKind.WATER, 50), (MeterKind.GAS, 15), (MeterKind.HEAT, 10), (MeterKind.ELECTRICITY, 25))
# Per kind, in thousandths of the register unit: mean use per day, leak per hour, register at installation.
HOUSEHOLDS: dict[MeterKind, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    MeterKind.WATER: ((250, 700), (4, 20), (0, 20_000)),
    MeterKind.GAS: ((500, 2_000), (10, 50), (0, 20_000)),
    MeterKind.HEAT: ((800, 2_500), (0, 0), (0, 5_000)),  # m3 of heating water; heat follows from it
    MeterKind.ELECTRICITY: ((4_000, 16_000), (0, 0), (0, 100_000)),
}
MANUFACTURER = "0201"  # CJ/T 188 A6 A5 (§1.2); no 68 byte, which would make the frame look like DL/T 645


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FleetSpec:
    """What to simulate. Rates are chances per meter (leak, battery, drift, push) or per request (offline)."""

    meters: int = 20
    dtus: int = 2
    seed: int = 1
    prefix: str = "SIM"
    tenant: str = "demo"
    mix: tuple[tuple[MeterKind, int], ...] = DEFAULT_MIX
    leak_rate: float = 0.02
    low_battery_rate: float = 0.03
    drift_rate: float = 0.1
    max_drift_s: int = 240  # below the head-end's 300 s future-skew guard
    push_rate: float = 0.0
    schedule: str = "hourly jitter 1h"  # what polled meters are registered with
    time_zone: str = "Asia/Shanghai"
    behaviour: DtuBehaviour = field(default_factory=DtuBehaviour)
    centre: tuple[Decimal, Decimal] = DEFAULT_CENTRE  # (latitude, longitude) the buildings stand around

    def __post_init__(self) -> None:
        if self.meters < 1 or self.dtus < 1:
            raise ValueError("a fleet needs at least one meter and one DTU")
        if not all(c.isalnum() or c in "-_." for c in self.prefix) or not self.prefix[:1].isalnum():
            raise ValueError(f"prefix {self.prefix!r} must be letters, digits, '-', '_' or '.'")
        if sum(weight for _, weight in self.mix) <= 0:
            raise ValueError("the protocol mix needs a positive weight")
        if not (-85 <= self.centre[0] <= 85 and -180 <= self.centre[1] <= 180):
            raise ValueError(f"centre {self.centre[0]},{self.centre[1]} is not a latitude (-85..85) and longitude")


@dataclass(frozen=True)
class FleetSummary:
    """The numbers the CLI logs every minute."""

    dtus: int
    connected: int
    requests_answered: int
    commands_obeyed: int
    drops: int
    pushes: int
    backlog: int
    largest_backlog: int
    delivered: int

    def line(self) -> str:
        return (f"{self.connected}/{self.dtus} DTUs connected, {self.requests_answered} requests answered, "
                f"{self.commands_obeyed} commands obeyed, {self.delivered} replies delivered, {self.drops} drops, "
                f"{self.pushes} pushes, backlog {self.backlog} (largest {self.largest_backlog})")


class Fleet:
    """Meters and DTUs with one delivery ledger; ``start``/``run`` connect them, ``stop`` ends it."""

    def __init__(self, spec: FleetSpec, meters: Sequence[SimMeter], dtus: Sequence[VirtualDtu], ledger: Ledger,
                 gateway_of: dict[str, str]) -> None:
        self.spec = spec
        self.meters = {meter.meter_id: meter for meter in meters}
        self.dtus = {dtu.dtu_id: dtu for dtu in dtus}
        self.ledger = ledger
        self._gateway_of = gateway_of
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    @classmethod
    def build(cls, spec: FleetSpec, clock: Clock = utc_now) -> Fleet:
        tz = ZoneInfo(spec.time_zone)
        ledger = Ledger()
        specs = _meter_specs(spec)
        meters = [_meter(s, tz) for s in specs]
        dtus: list[VirtualDtu] = []
        gateway_of: dict[str, str] = {}
        for index in range(spec.dtus):
            dtu_id = f"{spec.prefix}-DTU-{index + 1:04d}"
            group = meters[index * len(meters) // spec.dtus:(index + 1) * len(meters) // spec.dtus]
            gateway_of.update((m.meter_id, dtu_id) for m in group)
            dtus.append(VirtualDtu(dtu_id, registration_id(spec, dtu_id), group, behaviour=spec.behaviour,
                                   ledger=ledger, clock=clock, seed=f"{spec.seed}:{spec.prefix}:{dtu_id}"))
        return cls(spec, meters, dtus, ledger, gateway_of)

    def dtu(self, dtu_id: str) -> VirtualDtu:
        return self.dtus[dtu_id]

    def meter(self, meter_id: str) -> SimMeter:
        return self.meters[meter_id]

    def dtu_of(self, meter_id: str) -> VirtualDtu:
        return self.dtus[self._gateway_of[meter_id]]

    def valve_meters(self) -> list[FlowMeter]:
        return [m for m in self.meters.values() if isinstance(m, FlowMeter)]

    def relay_meters(self) -> list[ElectricityMeter]:
        return [m for m in self.meters.values() if isinstance(m, ElectricityMeter)]

    def csv_gateways(self) -> str:
        """The gateways import body: one DTU row per virtual DTU."""
        rows = [{"gateway_id": d.dtu_id, "kind": "dtu", "registration_id": d.registration_id,
                 "model": "amiflow-sim", "firmware": "1.0"} for d in self.dtus.values()]
        return registration.csv_text(registration.GATEWAY_COLUMNS, rows)

    def sites(self) -> dict[str, Site]:
        """Where each meter stands: its DTU's building, a room in it, and a position near the fleet's centre."""
        buildings = [[m.meter_id for m in dtu.meters] for dtu in self.dtus.values()]
        return fleet_sites(self.spec.prefix, self.spec.centre, buildings)

    def csv_meters(self) -> str:
        """The meters import body: profile, bus address, DTU and site of every virtual meter."""
        rows, sites = [], self.sites()
        for meter in self.meters.values():
            facts, site = KINDS[meter.spec.kind], sites[meter.meter_id]
            rows.append({"meter_id": meter.meter_id, "utility": facts.utility.value, "profile": facts.profile,
                         "bus_address": meter.bus_address, "unit": facts.unit.value, "multiplier": "1",
                         "schedule": "push" if meter.spec.traits.pushes else self.spec.schedule,
                         "gateway_id": self._gateway_of[meter.meter_id], "premise": site.premise,
                         "room": site.room, "building": site.building, "latitude": str(site.latitude),
                         "longitude": str(site.longitude)})
        return registration.csv_text(registration.LOCATED_METER_COLUMNS, rows)

    async def register(self, api_url: str, *, deadline_s: float = 120.0,
                       client: httpx.AsyncClient | None = None) -> list[registration.ImportOutcome]:
        """Import the fleet into the registry (idempotent), retrying until the API answers."""
        return await registration.import_fleet(api_url, self.spec.tenant, self.csv_gateways(), self.csv_meters(),
                                               deadline_s=deadline_s, client=client)

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                    server_hostname: str | None = None) -> None:
        """Connect every DTU in the background (over TLS with a context, see ``dtu_tls``); returns at once."""
        self._stopped.clear()
        self._tasks = [asyncio.create_task(dtu.run(host, port, tls, server_hostname), name=f"dtu {dtu.dtu_id}")
                       for dtu in self.dtus.values()]

    async def run(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        """Run until ``stop``."""
        await self.start(host, port, tls)
        await self._stopped.wait()

    async def stop(self) -> None:
        for dtu in self.dtus.values():
            await dtu.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._stopped.set()

    async def wait_online(self, timeout_s: float = 30.0) -> None:
        """Until every DTU is logged in; TimeoutError otherwise."""
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(dtu.online.wait() for dtu in self.dtus.values()))

    def summary(self) -> FleetSummary:
        dtus = list(self.dtus.values())
        backlogs = [len(d.backlog) for d in dtus]
        return FleetSummary(
            dtus=len(dtus), connected=sum(d.online.is_set() for d in dtus),
            requests_answered=sum(d.stats.requests_answered for d in dtus),
            commands_obeyed=sum(d.stats.commands_obeyed for d in dtus), drops=sum(d.stats.drops for d in dtus),
            pushes=sum(d.stats.pushes for d in dtus), backlog=sum(backlogs), largest_backlog=max(backlogs, default=0),
            delivered=len(self.ledger))


def _meter(spec: MeterSpec, tz: ZoneInfo) -> SimMeter:
    if spec.kind is MeterKind.ELECTRICITY:
        return ElectricityMeter(spec, tz)
    return HeatMeter(spec, tz) if spec.kind is MeterKind.HEAT else FlowMeter(spec, tz)


def kinds_of(spec: FleetSpec) -> list[MeterKind]:
    """Each meter's kind: counts by largest remainder over the mix, order shuffled by the seed."""
    total = sum(weight for _, weight in spec.mix)
    exact = [(kind, spec.meters * weight / total) for kind, weight in spec.mix]
    counts = Counter({kind: int(share) for kind, share in exact})
    by_remainder = sorted(exact, key=lambda ks: ks[1] - int(ks[1]), reverse=True)
    for kind, _ in by_remainder[: spec.meters - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind, _ in spec.mix for _ in range(counts[kind])]
    random.Random(f"{spec.seed}:{spec.prefix}:kinds").shuffle(kinds)
    return kinds


def _meter_specs(spec: FleetSpec) -> list[MeterSpec]:
    numbers: Counter[MeterKind] = Counter()
    tz = ZoneInfo(spec.time_zone)
    rng = random.Random(f"{spec.seed}:{spec.prefix}:addresses")
    # Unique across the fleet, so unique behind every DTU; 14 digits for CJ/T 188, 12 for DL/T 645.
    cjt188 = _AddressRun(MANUFACTURER, 10, rng.randint(10**7, 10**9))
    dlt645 = _AddressRun("", 12, rng.randint(10**9, 10**11))
    specs = []
    for kind in kinds_of(spec):
        numbers[kind] += 1
        meter_id = f"{spec.prefix}-{KINDS[kind].code}-{numbers[kind]:05d}"
        address = next(dlt645 if kind is MeterKind.ELECTRICITY else cjt188)
        specs.append(draw_meter(spec, meter_id, kind, address, tz))
    return specs


def draw_meter(spec: FleetSpec, meter_id: str, kind: MeterKind, bus_address: str, tz: ZoneInfo) -> MeterSpec:
    """One meter's household and traits, from the seed and its id alone (a bigger fleet keeps them)."""
    rng = random.Random(f"{spec.seed}:{spec.prefix}:{meter_id}")
    daily, leak, initial = HOUSEHOLDS[kind]
    leaking = kind in (MeterKind.WATER, MeterKind.GAS) and rng.random() < spec.leak_rate
    traits = Traits(leaking=leaking, battery_low=rng.random() < spec.low_battery_rate, clock_drift_s=_drift(rng, spec),
                    pushes=kind is not MeterKind.ELECTRICITY and rng.random() < spec.push_rate)
    curve = UsageCurve.draw(rng, installation_day(rng, tz), SHAPES[kind.value], milli(rng, *daily),
                            milli(rng, *leak) if leaking else Decimal(0))
    return MeterSpec(meter_id, kind, bus_address, curve, milli(rng, *initial), traits,
                     delta_t=Decimal(rng.randint(1200, 2500)).scaleb(-2))


def _drift(rng: random.Random, spec: FleetSpec) -> int:
    if rng.random() >= spec.drift_rate:
        return 0
    return rng.choice((-1, 1)) * rng.randint(min(30, spec.max_drift_s), spec.max_drift_s)


class _AddressRun:
    """Consecutive nameplate addresses, skipping any with a 68 byte on the wire (a frame-start look-alike)."""

    def __init__(self, head: str, digits: int, first: int) -> None:
        self.head, self.digits, self.serial = head, digits, first

    def __next__(self) -> str:
        while True:
            if self.serial >= 10 ** self.digits:
                # Not StopIteration: inside a generator expression that would end the fleet short, silently.
                raise ValueError(f"no {self.digits}-digit address left after {self.head!r}")
            address = f"{self.head}{self.serial:0{self.digits}d}"
            bad = next((i for i in range(0, len(address), 2) if address[i:i + 2] == "68"), None)
            if bad is None:
                self.serial += 1
                return address
            if bad + 1 < len(self.head):
                raise ValueError(f"address head {self.head!r} has a 68 byte: no address of it can be used")
            # Skip every serial sharing the 68 pair at once (one step at its last digit), not one by one:
            # a 68 in a high pair would otherwise take up to 10^8 steps.
            step = 10 ** (len(address) - bad - 2)
            self.serial = (self.serial // step + 1) * step


def registration_id(spec: FleetSpec, dtu_id: str) -> str:
    """An IMEI-like 15-digit id (what DTUs commonly register with, §1), unique per tenant, seed and prefix."""
    digest = hashlib.blake2b(f"{spec.tenant}:{spec.seed}:{spec.prefix}:{dtu_id}".encode(), digest_size=8).digest()
    body = "86" + f"{int.from_bytes(digest, 'big') % 10**12:012d}"
    return body + str(_luhn_digit(body))


def _luhn_digit(body: str) -> int:
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10


def installation_day(rng: random.Random, tz: ZoneInfo) -> datetime:
    """A local midnight in 2024 or the first half of 2025: registers already show some use."""
    day = date(2024, 1, 1) + timedelta(days=rng.randint(0, 540))
    return datetime.combine(day, time(0), tzinfo=tz)
