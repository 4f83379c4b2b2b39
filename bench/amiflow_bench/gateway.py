"""The gateway figure: how many concurrent DTU connections one ingest process holds, and what they cost it.

An operator sizing a big head-end registers the fleet, raises the gateway's socket caps above it (the
defaults, 5000 sockets in all and 200 per address, suit a small deployment) and lets the DTUs log in.
Here every DTU is one TCP socket of the bench process on 127.0.0.1: it sends its registration line as
the fleet simulator's DTUs do, then USR's factory heartbeat every HEARTBEAT_S, and nothing else. Logins
come in waves below the pending-login cap, which keeps its default. The figures are ingest's own: its
gauges on the worker's /metrics, the registry API's connection view, and the psutil view of the process
that listens on the DTU port.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from amiflow_runtime.testing import auth_headers
from ingest.simulator.models import KINDS, MeterKind
from ingest.simulator.registration import GATEWAY_COLUMNS, METER_COLUMNS, csv_text, import_fleet

from amiflow_bench.environment import BenchEnv, Platform, bench_env, platform

GOAL_CONNECTIONS = 10_000
GOAL = f"one ingest process holds {GOAL_CONNECTIONS:,} concurrent DTU connections, memory bounded and reported"
TENANT = "bench"
MIB = 1024 * 1024
SLACK = 100  # sockets above the fleet: a DTU reconnecting before its old socket is reaped must not be refused
WAVE_SETTLE_S = 120.0  # a wave whose logins are not all linked by then is reported, not waited for
SAMPLE_EVERY_S = 2.0  # a divisor of 10
# Ingest's /metrics counts its open descriptors on every scrape: polled any faster, the bench would cost
# the process it measures a visible share of its CPU at 10,000 sockets.
GAUGE_POLL_S = 1.0
API_SAMPLE = 20  # DTUs whose connection record the registry API is asked for
HEARTBEAT = b"www.usr.cn"  # USR's factory heartbeat, what ingest expects by default (INGEST_GATEWAY_HEARTBEAT_HEX)
HEARTBEAT_S = 30  # USR's default interval


@dataclass(frozen=True)
class Scale:
    dtus: int
    hold_s: float
    wave: int  # sockets opened at once; below gateway_max_pending_logins (500 by default)


SCALES = {"full": Scale(10_000, 60.0, 400), "quick": Scale(300, 5.0, 150)}


def operator_settings(dtus: int) -> dict[str, str]:
    """What an operator raises for a fleet of this size; the pending-login cap and every other default stay."""
    room = str(dtus + SLACK)
    return {"INGEST_GATEWAY_MAX_CONNECTIONS": room, "INGEST_GATEWAY_MAX_CONNECTIONS_PER_ADDRESS": room}


def raise_descriptor_limit() -> tuple[int, int]:
    """Soft limit of open files up to the hard one, for this process and the services it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def measure(env: BenchEnv, scale: str) -> dict[str, Any]:
    """Hold `scale`'s fleet of DTU connections on one ingest process; its counts, memory, CPU and descriptors."""
    size = SCALES[scale]
    limit, _hard = raise_descriptor_limit()
    settings = operator_settings(size.dtus)
    with platform(env, ["ingest"], "gateway", settings) as running:
        figures = asyncio.run(_measure(env, running, size))
    held = min(figures["connections_held_to_end"], figures["ingest_links_at_end"])
    return {"goal": GOAL, "goal_met": held >= GOAL_CONNECTIONS, "scale": scale,
            "settings_raised_for_the_run": settings, "bench_open_files_limit": limit, **figures}


async def _measure(env: BenchEnv, running: Platform, size: Scale) -> dict[str, Any]:
    ingest = IngestView.of(running)
    async with httpx.AsyncClient(timeout=600.0, headers=auth_headers(TENANT)) as http:
        ingest.http = http
        memory = {"started": ingest.footprint()}
        took = time.monotonic()
        await import_fleet(running.api["ingest"], TENANT, *fleet_csv(size.dtus), deadline_s=600.0, client=http)
        registration_s = time.monotonic() - took
        memory["registered"] = ingest.footprint()
        dtus = [BenchDtu(registration_id(i)) for i in range(size.dtus)]
        heartbeats = Heartbeats(dtus)
        ticking = asyncio.create_task(heartbeats.run())
        try:
            ramp = await connect_in_waves(ingest, dtus, size.wave)
            hold = await hold_links(env, ingest, size.hold_s, memory)
            end = await held_at_end(ingest, dtus)
        finally:
            ticking.cancel()
        release = await disconnect_all(ingest, dtus, memory)
    return {"dtus_registered": size.dtus, "meters_per_dtu": 1, "registration_s": round(registration_s, 1),
            "gateway_process": ingest.role,
            "ingest_open_files_limit": ingest.process.rlimit(psutil.RLIMIT_NOFILE)[0],
            **ramp, "hold_s": size.hold_s, "heartbeats_sent": heartbeats.sent, **end, **hold, **release,
            "memory_mib": memory,
            "memory_per_connection_kib": per_connection(memory["registered"], memory["holding_end"],
                                                        end["ingest_links_at_end"]),
            "rss_growth_while_holding_mib": round(memory["holding_end"]["rss"] - memory["all_connected"]["rss"], 1),
            "polls_per_s": "not measured"}


def registration_id(index: int) -> str:
    """A 15-digit IMEI-like id, as most DTUs register with."""
    return f"86{index:013d}"


def fleet_csv(dtus: int) -> tuple[str, str]:
    """The registry import files: one DTU per socket and one push meter behind each (no polls are due)."""
    water = KINDS[MeterKind.WATER]
    gateways = [{"gateway_id": f"BENCH-DTU-{i:05d}", "kind": "dtu", "registration_id": registration_id(i),
                 "model": "bench", "firmware": "1.0"} for i in range(dtus)]
    meters = [{"meter_id": f"BENCH-WM-{i:05d}", "utility": water.utility.value, "profile": water.profile,
               "bus_address": f"{i + 1:014d}", "unit": water.unit.value, "multiplier": "1", "schedule": "push",
               "gateway_id": f"BENCH-DTU-{i:05d}"} for i in range(dtus)]
    return csv_text(GATEWAY_COLUMNS, gateways), csv_text(METER_COLUMNS, meters)


class BenchDtu(asyncio.Protocol):
    """One DTU's socket: the registration line as soon as it connects, then heartbeats only."""

    def __init__(self, registration_id: str) -> None:
        self.registration_id = registration_id
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.ends: list[str] = []  # why each of its sockets failed or ended, other than by close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.open = transport, True
        transport.write(self.registration_id.encode("ascii") + b"\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open:  # close() clears `open` first: the bench's own closes are not counted
            self.ends.append("closed by ingest" if exc is None else type(exc).__name__)
        self.open = False

    def heartbeat(self) -> bool:
        if self.transport is None or not self.open:
            return False
        self.transport.write(HEARTBEAT)
        return True

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()


async def open_dtu(dtu: BenchDtu, port: int) -> None:
    """Connect one DTU; a failure is kept on it, by kind, for the report."""
    try:
        await asyncio.get_running_loop().create_connection(lambda: dtu, "127.0.0.1", port)
    except OSError as exc:
        dtu.ends.append(errno.errorcode.get(exc.errno or 0, type(exc).__name__))


class Heartbeats:
    """Every open DTU sends its heartbeat each HEARTBEAT_S, phases spread over the interval by index."""

    def __init__(self, dtus: list[BenchDtu]) -> None:
        self.dtus = dtus
        self.sent = 0

    async def run(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            self.sent += sum(dtu.heartbeat() for dtu in self.dtus[tick % HEARTBEAT_S::HEARTBEAT_S])


@dataclass
class IngestView:
    """The ingest process that holds the DTU port, its ops /metrics and its API."""

    role: str
    process: psutil.Process
    api_url: str
    ops_url: str
    gateway_port: int
    http: httpx.AsyncClient | None = None

    @classmethod
    def of(cls, running: Platform) -> IngestView:
        for role, process in running.processes().items():
            listening = [c for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
            if any(c.laddr.port == running.gateway_port for c in listening):
                return cls(role, process, running.api["ingest"],
                           f"http://127.0.0.1:{running.env['INGEST_OPS_PORT']}", running.gateway_port)
        raise RuntimeError(f"no ingest process listens on the DTU port {running.gateway_port}")

    def footprint(self) -> dict[str, float]:
        memory = self.process.memory_full_info()
        return {"rss": round(memory.rss / MIB, 1), "uss": round(memory.uss / MIB, 1)}

    async def links_and_sockets(self) -> tuple[int, int]:
        """The gateway's own gauges: DTU links held, and sockets held logged in or not."""
        assert self.http is not None
        text = (await self.http.get(f"{self.ops_url}/metrics")).text
        names = ("amiflow_gateway_links", "amiflow_gateway_sockets")
        gauges = dict(line.split(" ", 1) for line in text.splitlines() if line.split(" ", 1)[0] in names)
        links, sockets = (int(float(gauges.get(name, "0"))) for name in names)
        return links, sockets

    async def online_in_api(self, dtus: list[BenchDtu]) -> tuple[int, int]:
        """How many of an even sample of the DTUs the registry API shows online, of how many asked."""
        assert self.http is not None
        picked = range(0, len(dtus), max(len(dtus) // API_SAMPLE, 1))
        online = 0
        for index in picked:
            view = (await self.http.get(f"{self.api_url}/v1/gateways/BENCH-DTU-{index:05d}")).json()
            online += bool((view.get("connection") or {}).get("online"))
        return online, len(picked)


async def connect_in_waves(ingest: IngestView, dtus: list[BenchDtu], wave: int) -> dict[str, Any]:
    """Open every DTU's socket, a wave at a time, each wave waited for until ingest has linked its logins.

    A DTU whose socket failed or was closed tries once more after the last wave, as a real one reconnects.
    """
    started, cpu = time.monotonic(), _cpu_s(ingest.process)
    unsettled = 0
    for first in range(0, len(dtus), wave):
        unsettled += not await _wave(ingest, dtus, dtus[first:first + wave])
    again = [d for d in dtus if not d.open]
    if again:
        unsettled += not await _wave(ingest, dtus, again)
    connect_s, cpu = time.monotonic() - started, _cpu_s(ingest.process) - cpu
    admitted = (await ingest.links_and_sockets())[0]
    return {"connections_attempted": len(dtus) + len(again), "connections_admitted": admitted,
            "dtus_that_reconnected": len(again), "connection_ends": dict(Counter(end for d in dtus for end in d.ends)),
            "waves_not_settled": unsettled, "wave_size": wave, "connect_all_s": round(connect_s, 1),
            "logins_per_s": round(admitted / connect_s, 1),
            "ingest_cpu_ms_per_login": round(cpu * 1000 / max(admitted, 1), 1)}


async def _wave(ingest: IngestView, dtus: list[BenchDtu], wave: list[BenchDtu]) -> bool:
    """Open `wave`'s sockets; False if ingest has not linked every open socket within WAVE_SETTLE_S."""
    await asyncio.gather(*(open_dtu(d, ingest.gateway_port) for d in wave))

    async def linked() -> bool:
        return (await ingest.links_and_sockets())[0] >= sum(d.open for d in dtus)

    return await _polled(linked, time.monotonic() + WAVE_SETTLE_S)


async def _polled(check: Callable[[], Awaitable[bool]], deadline: float) -> bool:
    """Ask ingest until `check` holds, or False at the deadline: its gauges and records have no event to await."""
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(GAUGE_POLL_S)
    return True


async def hold_links(env: BenchEnv, ingest: IngestView, hold_s: float,
                     memory: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Keep every link for `hold_s` (the DTUs heartbeat meanwhile); ingest's memory, CPU and descriptors."""
    memory["all_connected"] = ingest.footprint()
    database = env.processes().get("postgresql")
    cpu, database_cpu = _cpu_s(ingest.process), _tree_cpu_s(database)
    started = time.monotonic()
    timeline = [memory["all_connected"]["rss"]]  # RSS every SAMPLE_EVERY_S: flat once the links are settled
    while (left := hold_s - (time.monotonic() - started)) > 0:
        await asyncio.sleep(min(SAMPLE_EVERY_S, left))
        timeline.append(ingest.footprint()["rss"])
    cpu = _cpu_s(ingest.process) - cpu
    database_s = sum(seconds - database_cpu.get(pid, 0.0) for pid, seconds in _tree_cpu_s(database).items())
    memory["holding_end"] = ingest.footprint()
    memory["holding_peak"] = {"rss": max(timeline)}
    return {"rss_mib_every_10_s_while_holding": timeline[::int(10 / SAMPLE_EVERY_S)],
            "ingest_cpu_s_while_holding": round(cpu, 2), "ingest_cpu_cores_while_holding": round(cpu / hold_s, 3),
            "postgresql_cpu_cores_while_holding": round(database_s / hold_s, 3),
            "ingest_open_files_while_holding": ingest.process.num_fds()}


async def held_at_end(ingest: IngestView, dtus: list[BenchDtu]) -> dict[str, Any]:
    """What is still held after the hold: by the bench's sockets, by ingest's gauges, by the registry API."""
    links, sockets = await ingest.links_and_sockets()
    return {"connections_held_to_end": sum(d.open for d in dtus), "ingest_links_at_end": links,
            "ingest_sockets_at_end": sockets,
            "api_sample_online": "{}/{}".format(*await ingest.online_in_api(dtus))}


async def disconnect_all(ingest: IngestView, dtus: list[BenchDtu],
                         memory: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Close every socket at once (a cell going down): how long ingest takes to let go and to record it offline."""
    started = time.monotonic()
    for dtu in dtus:
        dtu.close()
    deadline = started + WAVE_SETTLE_S

    async def released() -> bool:
        return await ingest.links_and_sockets() == (0, 0)

    async def recorded_offline() -> bool:
        return (await ingest.online_in_api(dtus))[0] == 0

    await _polled(released, deadline)
    released_s = time.monotonic() - started
    await _polled(recorded_offline, deadline)
    memory["after_disconnect"] = ingest.footprint()
    return {"release_all_s": round(released_s, 1), "links_after_release": (await ingest.links_and_sockets())[0],
            "recorded_offline_s": round(time.monotonic() - started, 1),
            "api_sample_online_after_release": "{}/{}".format(*await ingest.online_in_api(dtus))}


def per_connection(before: dict[str, float], held: dict[str, float], links: int) -> dict[str, float]:
    """Memory added by the links, per link, in KiB."""
    return {kind: round((held[kind] - before[kind]) * 1024 / max(links, 1), 1) for kind in ("rss", "uss")}


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _tree_cpu_s(process: psutil.Process | None) -> dict[int, float]:
    """CPU seconds of a process and of each child, by pid (PostgreSQL's backends are the postmaster's children)."""
    if process is None:
        return {}
    seconds = {}
    for member in (process, *process.children()):
        try:
            seconds[member.pid] = _cpu_s(member)
        except psutil.Error:
            pass  # a backend that ended between listing and reading
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", choices=sorted(SCALES), default="quick")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per /metrics poll
    with tempfile.TemporaryDirectory(prefix="amiflow-bench-gateway-") as folder, bench_env(Path(folder)) as env:
        print(json.dumps(measure(env, args.scale), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
