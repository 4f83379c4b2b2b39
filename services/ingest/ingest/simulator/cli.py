"""``python -m ingest.simulator`` (``amiflow simulate``): run a virtual fleet against the DTU gateway.

Defaults follow the ingest settings of the same environment: the gateway port from
INGEST_GATEWAY_PORT, the API from INGEST_API_PORT, the heartbeat bytes from
INGEST_GATEWAY_HEARTBEAT_HEX (heartbeats are off unless the gateway knows them, else it would take
them for garbage), meter clocks in AMIFLOW_TIME_ZONE, and TLS when INGEST_GATEWAY_TLS_CERTFILE is set
(the DTUs then trust exactly that certificate).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
from collections.abc import Coroutine, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from amiflow_runtime.logs import configure_logging

from ingest.simulator.demo import DemoFailed, fleet_meters, open_demo_accounts
from ingest.simulator.dtu import DtuBehaviour, dtu_tls
from ingest.simulator.fleet import Fleet, FleetSpec
from ingest.simulator.models import MeterKind
from ingest.simulator.registration import RegistrationFailed
from ingest.simulator.sites import DEFAULT_CENTRE

log = logging.getLogger("ingest.simulator")
T = TypeVar("T")
USR_HEARTBEAT = "7777772e7573722e636e"  # "www.usr.cn", the USR factory content (dtu-connections.md §2)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def _chance(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _mix(text: str) -> tuple[tuple[MeterKind, int], ...]:
    try:
        pairs = [part.split("=") for part in text.split(",") if part.strip()]
        return tuple((MeterKind(kind.strip()), int(weight)) for kind, weight in pairs)
    except ValueError:
        kinds = ", ".join(k.value for k in MeterKind)
        raise argparse.ArgumentTypeError(f"{text!r} is not KIND=WEIGHT,… with KIND one of {kinds}") from None


def _centre(text: str) -> tuple[Decimal, Decimal]:
    try:
        latitude, longitude = (Decimal(part.strip()) for part in text.split(","))
    except (ValueError, InvalidOperation):
        raise argparse.ArgumentTypeError(f"{text!r} is not LATITUDE,LONGITUDE in decimal degrees") from None
    if not (latitude.is_finite() and longitude.is_finite() and -85 <= latitude <= 85 and -180 <= longitude <= 180):
        raise argparse.ArgumentTypeError(f"{text!r}: latitude -85..85, longitude -180..180")
    return latitude, longitude


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(prog="amiflow simulate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--meters", type=int, default=20, help="virtual meters (default 20)")
    add("--dtus", type=int, default=2, help="virtual DTUs the meters are spread over (default 2)")
    add("--gateway", type=_host_port, default=("127.0.0.1", int(env.get("INGEST_GATEWAY_PORT", "9100"))),
        metavar="HOST:PORT", help="the DTU gateway (default 127.0.0.1:$INGEST_GATEWAY_PORT or 9100)")
    add("--api", default=f"http://127.0.0.1:{env.get('INGEST_API_PORT', '8001')}", help="the ingest API")
    add("--tenant", default=env.get("AMIFLOW_DEFAULT_TENANT", "demo"))
    add("--seed", type=int, default=1, help="the same seed builds the same fleet")
    add("--prefix", default="SIM", help="device id prefix (SIM-DTU-0001, SIM-WM-00001 …)")
    add("--register", action="store_true", help="import the fleet into the registry first (idempotent)")
    add("--register-timeout-s", type=float, default=120.0, help="how long to wait for the API to answer")
    add("--demo-accounts", action="store_true",
        help="after registering, open demo tariffs, accounts (two meters each), recharges and contacts")
    add("--billing-api", default=f"http://127.0.0.1:{env.get('BILLING_API_PORT', '8003')}", help="the billing API")
    add("--notify-api", default=f"http://127.0.0.1:{env.get('NOTIFY_API_PORT', '8005')}", help="the notify API")
    add("--mix", type=_mix, default=FleetSpec.mix, help="kind weights, default water=50,gas=15,heat=10,electricity=25")
    add("--schedule", default=FleetSpec.schedule, help="read schedule of polled meters (default 'hourly jitter 1h')")
    add("--offline-rate", type=_chance, default=0.0, help="chance per request that a DTU drops mid-poll")
    add("--offline-s", type=float, nargs=2, default=(5.0, 30.0), metavar=("MIN", "MAX"), help="offline spell")
    add("--leak-rate", type=_chance, default=FleetSpec.leak_rate)
    add("--low-battery-rate", type=_chance, default=FleetSpec.low_battery_rate)
    add("--drift-rate", type=_chance, default=FleetSpec.drift_rate, help="share of meters whose clock is off")
    add("--push-rate", type=_chance, default=0.0, help="share of CJ/T 188 meters that push 901F themselves")
    add("--push-interval-s", type=float, default=3600.0)
    add("--heartbeat-s", type=float, default=None,
        help="idle heartbeat interval; default 60 when INGEST_GATEWAY_HEARTBEAT_HEX is set, else off")
    add("--heartbeat-hex", default=env.get("INGEST_GATEWAY_HEARTBEAT_HEX") or USR_HEARTBEAT)
    add("--time-zone", default=env.get("AMIFLOW_TIME_ZONE", "Asia/Shanghai"), help="the meters' wall clocks")
    add("--tls-ca", metavar="FILE", default=None,
        help="speak TLS to the gateway, trusting this CA or the gateway's own certificate "
             "(default: $INGEST_GATEWAY_TLS_CERTFILE when set, else plain TCP)")
    add("--tls-cert", metavar="FILE", default=None, help="the DTUs' client certificate, for mutual TLS")
    add("--tls-key", metavar="FILE", default=None, help="the key of --tls-cert")
    add("--tls-server-name", default=None, help="the name the gateway's certificate must show (default: its host)")
    add("--centre", "--center", type=_centre, default=DEFAULT_CENTRE, metavar="LAT,LON",
        help="where the fleet's buildings stand, one per DTU (default 22.5431,114.0579: Futian, Shenzhen)")
    add("--duration-s", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    add("--summary-s", type=float, default=60.0, help=argparse.SUPPRESS)
    return parser


def spec_of(args: argparse.Namespace) -> FleetSpec:
    """The fleet the arguments describe."""
    heartbeat_s = args.heartbeat_s
    if heartbeat_s is None:
        heartbeat_s = 60.0 if os.environ.get("INGEST_GATEWAY_HEARTBEAT_HEX") else 0.0
    elif heartbeat_s > 0 and not os.environ.get("INGEST_GATEWAY_HEARTBEAT_HEX"):
        log.warning("heartbeats on, but INGEST_GATEWAY_HEARTBEAT_HEX is not set here: make sure the gateway "
                    "runs with INGEST_GATEWAY_HEARTBEAT_HEX=%s, or it rejects them as garbage", args.heartbeat_hex)
    behaviour = DtuBehaviour(offline_rate=args.offline_rate, offline_s=tuple(args.offline_s),
                             heartbeat_s=heartbeat_s, heartbeat=bytes.fromhex(args.heartbeat_hex),
                             push_interval_s=args.push_interval_s)
    return FleetSpec(meters=args.meters, dtus=args.dtus, seed=args.seed, prefix=args.prefix, tenant=args.tenant,
                     mix=args.mix, leak_rate=args.leak_rate, low_battery_rate=args.low_battery_rate,
                     drift_rate=args.drift_rate, push_rate=args.push_rate, schedule=args.schedule,
                     time_zone=args.time_zone, behaviour=behaviour, centre=args.centre)


def tls_of(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The DTUs' TLS context, or None for plain TCP."""
    if args.tls_ca:
        return dtu_tls(args.tls_ca, args.tls_cert, args.tls_key)
    pinned = os.environ.get("INGEST_GATEWAY_TLS_CERTFILE")
    if pinned:  # the gateway's own certificate, trusted as it is: its name is beside the point
        return dtu_tls(pinned, args.tls_cert, args.tls_key, check_hostname=False)
    if args.tls_cert:
        raise SystemExit("--tls-cert needs --tls-ca (what the DTUs trust the gateway by)")
    return None


async def simulate(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    """Register (if asked), run until ``stop``, SIGINT/SIGTERM or the duration; the exit code."""
    stop = stop or asyncio.Event()
    fleet = Fleet.build(spec_of(args))
    host, port = args.gateway
    tls = tls_of(args)
    with _signals_set(stop):
        if args.register:
            try:
                if await _unless(stop, fleet.register(args.api, deadline_s=args.register_timeout_s)) is None:
                    return 0
            except RegistrationFailed as exc:
                log.error("%s", exc)
                return 1
        if args.demo_accounts:
            try:
                await _unless(stop, open_demo_accounts(fleet_meters(fleet), args.tenant, args.billing_api,
                                                       args.notify_api, args.time_zone, args.seed,
                                                       deadline_s=args.register_timeout_s))
            except DemoFailed as exc:  # the fleet still runs: its readings wait for accounts, not lost
                log.error("demo customers not opened: %s", exc)
        log.info("simulating %d meters behind %d DTUs against %s:%d%s (seed %d, prefix %s)", len(fleet.meters),
                 len(fleet.dtus), host, port, " over TLS" if tls else "", args.seed, args.prefix)
        await fleet.start(host, port, tls, args.tls_server_name)
        reporter = asyncio.create_task(_report(fleet, args.summary_s))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.duration_s)
        finally:
            reporter.cancel()
            await fleet.stop()
    log.info("simulator stopped: %s", fleet.summary().line())
    return 0


async def _unless(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """The work's result, or None when ``stop`` came first (the work is cancelled)."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Any:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _report(fleet: Fleet, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        log.info("fleet: %s", fleet.summary().line())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("ingest", "simulator", os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "json"))
    try:
        return asyncio.run(simulate(args))
    except KeyboardInterrupt:
        return 130
