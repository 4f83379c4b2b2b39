"""The `amiflow` command: run the whole platform on one machine, and the chores around it.

    amiflow up        broker (unless KAFKA_BOOTSTRAP_SERVERS is set), topics, every service's api + worker
    amiflow kafka     start | stop | status | fetch the local broker
    amiflow topics    create / verify the registry's topics and print them
    amiflow migrate   run each service's database migrations
    amiflow audit     verify each service's audit trail (hash chain; --against-kafka: its published copy)
    amiflow identity  create-user | create-client | rotate-keys | list  (on the identity database)
    amiflow backup    every service database and registry topic into one checksummed set
    amiflow restore   verify a backup set and restore it into empty databases and topics
    amiflow decode    decode a meter frame;  amiflow encode   build a downlink frame
    amiflow simulate  a fleet of virtual meters and DTUs talking to the gateway

Heavy imports (pydantic settings, aiokafka, the topic registry) happen inside the commands so that
`amiflow --help` stays instant and a half-written registry cannot break the other commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from amiflow_runtime.localkafka import LocalKafka, fetch_jars
from amiflow_runtime.paths import project_root

# Identity comes first: `up` starts it, and waits for it, before the services that check its tokens.
SERVICES = ("identity", "ingest", "vee", "billing", "commands", "notify")
ROLES = ("api", "worker")
DEFAULT_API_PORTS = {"ingest": 8001, "vee": 8002, "billing": 8003, "commands": 8004, "notify": 8005,
                     "identity": 8006}
DEFAULT_CONSOLE_PORT = 8007  # the operator console and customer portal (services/console), api-only
IDENTITY_READY_TIMEOUT_S = 180.0
DEFAULT_MAILBOX_PORT = 2525  # `up`'s local mailbox for the demo tenant's e-mail
DEFAULT_GATEWAY_PORT = 9100
OPS_PORT_OFFSET = 100
STOP_TIMEOUT_S = 20.0
# The log context ids the services attach (amiflow_runtime.logs.CONTEXT_KEYS), in display order.
ID_KEYS = ("tenant_id", "event_id", "event_type", "meter_id", "account_id", "device_id")
LABEL_WIDTH = max(len(f"{s}-{r}") for s in SERVICES for r in ROLES)
LEVEL_WIDTH = len("WARNING")

_RESET = "\033[0m"
_SERVICE_COLOURS = {"ingest": "\033[36m", "vee": "\033[35m", "billing": "\033[32m",
                    "commands": "\033[33m", "notify": "\033[34m", "identity": "\033[92m"}
_OTHER_COLOUR = "\033[37m"
_LEVEL_COLOURS = {"WARNING": "\033[33;1m", "ERROR": "\033[31;1m", "CRITICAL": "\033[31;1m"}
_CLOCK = re.compile(r"\d{2}:\d{2}:\d{2}")

log = logging.getLogger("amiflow.cli")


# ---------------------------------------------------------------------------------------------
# Rendering the children's log lines


def _paint(text: str, code: str | None, colour: bool) -> str:
    return f"{code}{text}{_RESET}" if colour and code else text


def _parse_record(line: str) -> dict[str, Any] | None:
    if not line.lstrip().startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "message" in record else None


def _clock(value: object) -> str:
    # The JSON formatter writes "2025-01-31 12:34:56,789"; any format with a clock in it will do.
    match = _CLOCK.search(str(value or ""))
    return match.group(0) if match else time.strftime("%H:%M:%S")


def _service_of(label: str) -> str:
    return label.split("-", 1)[0]


def render_line(name: str, line: str, colour: bool = False) -> str:
    """One output line of child `name` as text: JSON log records formatted, anything else prefixed."""
    record = _parse_record(line)
    if record is None:
        return f"{_paint(f'{name:<{LABEL_WIDTH}}', _SERVICE_COLOURS.get(_service_of(name)), colour)} {line}"
    service = str(record.get("service") or _service_of(name))
    role = record.get("process_role")
    label = f"{service}-{role}" if role else name
    level = str(record.get("level") or "INFO").upper()
    text = " ".join((
        _clock(record.get("time")),
        _paint(f"{label:<{LABEL_WIDTH}}", _SERVICE_COLOURS.get(service, _OTHER_COLOUR), colour),
        _paint(f"{level:<{LEVEL_WIDTH}}", _LEVEL_COLOURS.get(level), colour),
        str(record["message"]),
    ))
    ids = [f"{key}={record[key]}" for key in ID_KEYS if record.get(key) not in (None, "")]
    if ids:
        text += f" [{' '.join(ids)}]"
    if record.get("exc_info"):
        text += "\n" + textwrap.indent(str(record["exc_info"]), "    ")
    return text


def _use_colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


# ---------------------------------------------------------------------------------------------
# Supervising child processes


@dataclass
class Child:
    """One service process under supervision and the thread copying its output."""

    name: str
    proc: subprocess.Popen[bytes]
    reader: threading.Thread


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisor:
    """Starts children in their own process groups, prints their output, stops them all."""

    def __init__(self, colour: bool = False, out: IO[str] | None = None) -> None:
        self.colour = colour
        self.out = out or sys.stdout
        self.children: list[Child] = []
        self._lock = threading.Lock()  # one line at a time, whichever thread writes it

    def say(self, text: str) -> None:
        """Print a whole line without interleaving with the children's output."""
        with self._lock:
            print(text, file=self.out, flush=True)

    def spawn(self, name: str, cmd: Sequence[str], env: dict[str, str]) -> Child:
        """Start `cmd` in a new session (so a terminal Ctrl-C reaches us, not it) and copy its output."""
        proc = subprocess.Popen(list(cmd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        reader = threading.Thread(target=self._pump, args=(name, proc.stdout), name=f"pump-{name}",
                                  daemon=True)
        child = Child(name, proc, reader)
        self.children.append(child)  # before anything can fail, so stop_all always sees it
        reader.start()
        return child

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                # Keep draining even if our stdout broke, or the child would block on a full pipe.
                with contextlib.suppress(OSError, ValueError):
                    self.say(render_line(name, raw.decode("utf-8", "replace").rstrip("\r\n"), self.colour))

    def watch(self, poll_s: float = 0.2) -> int:
        """Block until some child exits (none should); report it and return a non-zero exit code."""
        while True:
            for child in self.children:
                code = child.proc.poll()
                if code is not None:
                    child.reader.join(timeout=2.0)  # its last lines (often a traceback) come first
                    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    self.say(f"amiflow: {child.name} (pid {child.proc.pid}) {how}; stopping everything")
                    return code if code > 0 else 1
            time.sleep(poll_s)

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every child's process group, wait up to `timeout_s`, SIGKILL what remains."""
        if not self.children:
            return
        for child in self.children:
            _signal_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.1)
        for child in self._running():
            self.say(f"amiflow: {child.name} did not stop within {timeout_s:.0f} s; killing it")
            _signal_group(child.proc.pid, signal.SIGKILL)
        for child in self.children:
            child.proc.wait()
            child.reader.join(timeout=2.0)

    def _running(self) -> list[Child]:
        # poll() reaps an exited leader; the group may still hold its own children, so check both.
        return [c for c in self.children if c.proc.poll() is None or _group_alive(c.proc.pid)]


# ---------------------------------------------------------------------------------------------
# Settings the CLI needs from the environment


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def api_port(service: str) -> int:
    """The API port a service will listen on: <SVC>_API_PORT, else its default."""
    return _env_int(f"{service.upper()}_API_PORT", DEFAULT_API_PORTS[service])


def console_port() -> int:
    return _env_int("CONSOLE_API_PORT", DEFAULT_CONSOLE_PORT)


def ops_port(service: str) -> int:
    """The worker's health/metrics port: <SVC>_OPS_PORT, else the API port + 100."""
    return _env_int(f"{service.upper()}_OPS_PORT", api_port(service) + OPS_PORT_OFFSET)


def data_dir(explicit: str | None = None) -> Path:
    """--data-dir, else AMIFLOW_DATA_DIR, else <project root>/data; created if missing."""
    chosen = Path(explicit or os.environ.get("AMIFLOW_DATA_DIR") or project_root() / "data").resolve()
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def child_env(folder: Path, log_format: str = "json") -> dict[str, str]:
    """The children's environment: ours, plus the data dir and the log format."""
    env = dict(os.environ)
    env["AMIFLOW_DATA_DIR"] = str(folder)
    env["LOG_FORMAT"] = log_format
    env["PYTHONUNBUFFERED"] = "1"  # stdout is a pipe: without this, prints and tracebacks arrive late
    return env


def parse_services(text: str) -> list[str]:
    """A comma-separated service list, validated and put in start order."""
    wanted = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(wanted - set(SERVICES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown service(s) {', '.join(unknown)}; "
                                         f"choose from {','.join(SERVICES)}")
    if not wanted:
        raise argparse.ArgumentTypeError("no service given")
    return [s for s in SERVICES if s in wanted]


# ---------------------------------------------------------------------------------------------
# Topics


def ensure_registry_topics(wait: bool) -> tuple[list[Any], list[str]]:
    """Create the registry's missing topics on KAFKA_BOOTSTRAP_SERVERS; returns (specs, created names)."""
    from amiflow_schemas.topics import TOPICS

    from amiflow_runtime.config import ServiceSettings
    from amiflow_runtime.kafka import ensure_topics, wait_for_kafka

    settings = ServiceSettings()

    async def run() -> list[str]:
        if wait:  # an external cluster may still be starting (docker compose up, ...)
            await wait_for_kafka(settings, "amiflow-cli")
        return await ensure_topics(settings, TOPICS)

    return list(TOPICS), asyncio.run(run())


def human_ms(ms: int) -> str:
    """A retention in the largest whole unit: 604800000 -> 7d, -1 -> forever."""
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def format_topic_table(specs: Iterable[Any], created: Iterable[str] = ()) -> str:
    """The topics as a text table: name, partitions, cleanup, retention, status."""
    new = set(created)
    rows = [("TOPIC", "PARTITIONS", "CLEANUP", "RETENTION", "STATUS")]
    for spec in specs:
        # ensure_topics sets no retention on compacted topics: show what the broker applies.
        retention = "-" if spec.cleanup_policy == "compact" else human_ms(spec.retention_ms)
        rows.append((spec.name, str(spec.partitions), spec.cleanup_policy, retention,
                     "created" if spec.name in new else "exists"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


# ---------------------------------------------------------------------------------------------
# amiflow up


def banner(services: Sequence[str], bootstrap: str, folder: Path, console: bool = False) -> str:
    """Where everything listens, printed once the children are started."""
    lines = ["", "amiflow is starting:"]
    for svc in services:
        port = api_port(svc)
        lines.append(f"  {svc:<9} API http://127.0.0.1:{port}   OpenAPI http://127.0.0.1:{port}/docs"
                     f"   worker ops http://127.0.0.1:{ops_port(svc)}/healthz")
    if "ingest" in services:
        gateway = _env_int("INGEST_GATEWAY_PORT", DEFAULT_GATEWAY_PORT)
        lines.append(f"  DTU gateway      tcp://127.0.0.1:{gateway}")
    if console:
        lines.append(f"  console          http://127.0.0.1:{console_port()}/console/   "
                     f"portal http://127.0.0.1:{console_port()}/portal/")
    if "identity" in services:
        lines.append(f"  admin login      user admin, password in {_identity_files(folder)[0]}")
    if "notify" in services and "NOTIFY_TENANT_CHANNELS" not in os.environ:
        lines.append(f"  demo mailbox     smtp://127.0.0.1:{_env_int('AMIFLOW_MAILBOX_PORT', DEFAULT_MAILBOX_PORT)}"
                     f"   mail kept in {folder / 'mailbox'}")
    lines += [f"  Kafka bootstrap  {bootstrap}", f"  data dir         {folder}",
              "  Ctrl-C stops everything", ""]
    return "\n".join(lines)


def simulator_command(meters: int) -> list[str]:
    """The fleet simulator for `up --simulate N`: N meters on one DTU per 20, registered through the API,
    with demo customers (two meters per prepaid account) so billing, commands and notify have work."""
    gateway = _env_int("INGEST_GATEWAY_PORT", DEFAULT_GATEWAY_PORT)
    tenant = os.environ.get("AMIFLOW_DEFAULT_TENANT", "demo")
    return [sys.executable, "-m", "ingest.simulator", "--meters", str(meters), "--dtus", str(max(1, meters // 20)),
            "--register", "--api", f"http://127.0.0.1:{api_port('ingest')}", "--gateway", f"127.0.0.1:{gateway}",
            "--tenant", tenant, "--heartbeat-s", "60", "--demo-accounts",
            "--billing-api", f"http://127.0.0.1:{api_port('billing')}",
            "--notify-api", f"http://127.0.0.1:{api_port('notify')}"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _broker_for(args: argparse.Namespace, folder: Path) -> tuple[str, LocalKafka | None]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        return configured, None
    if args.no_broker:
        return f"127.0.0.1:{args.kafka_port}", None
    broker = LocalKafka(home=folder / "kafka", port=args.kafka_port)
    return broker.bootstrap_servers, broker


def _start_broker(broker: LocalKafka, out: Supervisor) -> None:
    fetch_jars()
    out.say(f"amiflow: starting the Kafka broker on {broker.bootstrap_servers} (log: {broker.log_file})")
    broker.start()


def _identity_files(folder: Path) -> tuple[Path, Path]:
    """Where `up` keeps the first admin's password and the simulator's client credentials (mode 0600)."""
    return folder / "identity" / "admin-password", folder / "identity" / "simulator-client.json"


def _start_identity(sup: Supervisor, env: dict[str, str], folder: Path) -> None:
    """Make the first admin and the simulator's client (once), start identity, wait until it is ready, and
    point the other services at its keys. Secrets go to files; only their paths are printed."""
    password_file, client_file = _identity_files(folder)
    made = subprocess.run([sys.executable, "-m", "identity.main", "bootstrap", "--admin-password-file",
                           str(password_file), "--simulator-client-file", str(client_file)],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    for line in (made.stdout + made.stderr).decode("utf-8", "replace").splitlines():
        sup.say(render_line("identity-tool", line, sup.colour))
    if made.returncode != 0:
        raise RuntimeError(f"the identity bootstrap failed (exit {made.returncode})")
    children = [sup.spawn(f"identity-{role}", [sys.executable, "-m", "identity.main", role], env) for role in ROLES]
    base = f"http://127.0.0.1:{api_port('identity')}"
    if not env.get("AMIFLOW_AUTH_JWKS_URL"):  # unless the services are pointed at another issuer's keys
        env["AMIFLOW_AUTH_JWKS_URL"] = f"{base}/.well-known/jwks.json"
    _wait_ready(f"{base}/readyz", children[0])
    sup.say(f"amiflow: identity is ready at {base}")


def _wait_ready(url: str, child: Child, timeout_s: float = IDENTITY_READY_TIMEOUT_S) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with code {child.proc.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{child.name} was not ready within {timeout_s:.0f} s ({url})")


def simulator_token(folder: Path) -> str:
    """An access token for the simulator's client, fetched from identity's token endpoint."""
    import httpx

    credentials = json.loads(_identity_files(folder)[1].read_text())
    answer = httpx.post(f"http://127.0.0.1:{api_port('identity')}/oauth/token", timeout=10.0,
                        data={"grant_type": "client_credentials"},
                        auth=(credentials["client_id"], credentials["client_secret"]))
    if answer.status_code != 200:
        raise RuntimeError(f"no token for the simulator: {answer.status_code} {answer.text[:200]}")
    return str(answer.json()["access_token"])


def _bring_up(args: argparse.Namespace, sup: Supervisor, broker: LocalKafka | None, folder: Path,
              bootstrap: str) -> int:
    if broker is not None:
        _start_broker(broker, sup)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap  # before ServiceSettings() and the children's env
    _, created = ensure_registry_topics(wait=True)
    sup.say(f"amiflow: topics ready on {bootstrap} ({len(created)} created)")
    env = child_env(folder)
    if "notify" in args.services and "NOTIFY_TENANT_CHANNELS" not in env:
        # No mail relay named: the demo tenant's e-mail goes to a local mailbox, one .eml file per message.
        port = _env_int("AMIFLOW_MAILBOX_PORT", DEFAULT_MAILBOX_PORT)
        tenant = env.get("AMIFLOW_DEFAULT_TENANT", "demo")
        env["NOTIFY_TENANT_CHANNELS"] = json.dumps({tenant: {"email": {
            "host": "127.0.0.1", "port": port, "security": "none", "from_address": "notify@amiflow.localhost",
            "from_name": "amiflow"}}})
        sup.spawn("mailbox", [sys.executable, "-m", "notify.mailbox", "--port", str(port),
                              "--dir", str(folder / "mailbox")], env)
    if "identity" in args.services:
        _start_identity(sup, env, folder)
    for svc in args.services:
        for role in ROLES if svc != "identity" else ():
            sup.spawn(f"{svc}-{role}", [sys.executable, "-m", f"{svc}.main", role], env)
    if args.simulate and "ingest" in args.services:
        simulator_env = dict(env)
        if "identity" in args.services:  # the simulator calls the APIs as the demo tenant's admin client
            simulator_env["AMIFLOW_API_TOKEN"] = simulator_token(folder)
        sup.spawn("simulator", simulator_command(args.simulate), simulator_env)
    if args.console:
        _start_console(sup, env, args.services)
    sup.say(banner(args.services, bootstrap, folder, console=args.console))
    return sup.watch()


def _start_console(sup: Supervisor, env: dict[str, str], services: Sequence[str]) -> None:
    """The web console and portal, proxying to the APIs of the services started here."""
    console_env = dict(env)
    console_env["CONSOLE_UPSTREAMS"] = json.dumps({svc: f"http://127.0.0.1:{api_port(svc)}" for svc in services})
    sup.spawn("console-api", [sys.executable, "-m", "console.main", "api"], console_env)


def cmd_up(args: argparse.Namespace) -> int:
    """Run the broker, topics and every service's api + worker in the foreground until Ctrl-C."""
    folder = data_dir(args.data_dir)
    sup = Supervisor(colour=_use_colour())
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops us like Ctrl-C
    bootstrap, broker = _broker_for(args, folder)
    try:
        return _bring_up(args, sup, broker, folder, bootstrap)
    except KeyboardInterrupt:
        sup.say("amiflow: stopping")
        return 0
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave processes behind.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            sup.stop_all()
            if broker is not None and broker.process is not None:  # never signal a stale pid file's pid
                sup.say("amiflow: stopping the Kafka broker")
                broker.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)


# ---------------------------------------------------------------------------------------------
# The other commands


def cmd_kafka(args: argparse.Namespace) -> int:
    """Delegate to `python -m amiflow_runtime.localkafka`."""
    from amiflow_runtime.localkafka import main as kafka_main

    home = Path(args.home) if args.home else data_dir(args.data_dir) / "kafka"
    return kafka_main([args.action, "--home", str(home), "--port", str(args.port)])


def cmd_topics(args: argparse.Namespace) -> int:
    """Create the registry's missing topics and print the registry as a table."""
    if args.bootstrap:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = args.bootstrap
    specs, created = ensure_registry_topics(wait=False)
    print(format_topic_table(specs, created))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    existed = len(specs) - len(created)
    print(f"\n{len(specs)} topics on {bootstrap}: {len(created)} created, {existed} existed")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Run `<svc>.main migrate` for each service, one after the other, and report."""
    env = child_env(data_dir(args.data_dir), log_format=os.environ.get("LOG_FORMAT", "text"))
    failed: list[str] = []
    for svc in args.services:
        print(f"amiflow: migrating {svc}", flush=True)
        cmd = [sys.executable, "-m", f"{svc}.main", "migrate"]
        code = subprocess.run(cmd, env=env, check=False).returncode
        print(f"amiflow: {svc}: {'ok' if code == 0 else f'FAILED (exit {code})'}", flush=True)
        if code != 0:
            failed.append(svc)
    if failed:
        print(f"amiflow: migrations failed for {', '.join(failed)}")
        return 1
    print(f"amiflow: {len(args.services)} service(s) migrated")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Run `<svc>.main audit verify` for each service (each finds its own database, as migrate does)."""
    env = child_env(data_dir(args.data_dir), log_format=os.environ.get("LOG_FORMAT", "text"))
    flags = ["--against-kafka"] if args.against_kafka else []
    broken = [svc for svc in args.services
              if subprocess.run([sys.executable, "-m", f"{svc}.main", "audit", args.action, *flags], env=env,
                                check=False).returncode != 0]
    if broken:
        print(f"amiflow: the audit trail of {', '.join(broken)} does not verify")
        return 1
    print(f"amiflow: {len(args.services)} audit trail(s) intact")
    return 0


# ---------------------------------------------------------------------------------------------
# Argument parsing


def _services_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--services", type=parse_services, default=list(SERVICES), metavar="LIST",
                        help=f"comma-separated subset of {','.join(SERVICES)} (default: all)")


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR",
                        help="embedded data folder (default: $AMIFLOW_DATA_DIR or <project>/data)")


def _add_up(sub: Any) -> None:
    up = sub.add_parser("up", help="run the broker and every service in the foreground")
    up.add_argument("--no-broker", action="store_true",
                    help="do not start a broker; use KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:--kafka-port")
    _services_option(up)
    up.add_argument("--kafka-port", type=int, default=9092, help="local broker port (default: 9092)")
    up.add_argument("--simulate", type=int, default=0, metavar="N",
                    help="also run N simulated meters behind simulated DTUs against the gateway")
    up.add_argument("--no-console", dest="console", action="store_false",
                    help="do not serve the web console and portal (port CONSOLE_API_PORT, default 8007)")
    _data_dir_option(up)
    up.set_defaults(handler=cmd_up)


def _add_chores(sub: Any) -> None:
    kafka = sub.add_parser("kafka", help="manage the local Kafka broker")
    kafka.add_argument("action", choices=["start", "stop", "status", "fetch"])
    kafka.add_argument("--port", type=int, default=9092)
    kafka.add_argument("--home", help="broker folder (default: <data dir>/kafka)")
    _data_dir_option(kafka)
    kafka.set_defaults(handler=cmd_kafka)
    topics = sub.add_parser("topics", help="create / verify the registry's topics")
    topics.add_argument("--bootstrap", metavar="ADDR", help="Kafka bootstrap servers "
                        "(default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    topics.set_defaults(handler=cmd_topics)
    migrate = sub.add_parser("migrate", help="run each service's database migrations")
    _services_option(migrate)
    _data_dir_option(migrate)
    migrate.set_defaults(handler=cmd_migrate)
    audit = sub.add_parser("audit", help="verify each service's audit trail")
    audit.add_argument("action", choices=["verify"])
    audit.add_argument("--against-kafka", action="store_true",
                       help="also compare each chain with its copy on the amiflow.audit topic")
    _services_option(audit)
    _data_dir_option(audit)
    audit.set_defaults(handler=cmd_audit)


def cmd_backup(args: argparse.Namespace) -> int:
    """Take a backup set (amiflow_runtime.backup explains what and in which order)."""
    from amiflow_runtime.backup import backup_command

    return backup_command(args, say=lambda line: print(f"amiflow backup: {line}", flush=True))


def cmd_restore(args: argparse.Namespace) -> int:
    """Verify a backup set and restore it."""
    from amiflow_runtime.backup import restore_command

    return restore_command(args, say=lambda line: print(f"amiflow restore: {line}", flush=True))


def _add_backup_restore(sub: Any) -> None:
    backup = sub.add_parser("backup", help="back up every service database and topic into a folder")
    backup.add_argument("folder", help="new or empty folder for the backup set")
    backup.add_argument("--only", choices=["databases", "topics"], help="back up only the databases or the topics")
    _services_option(backup)
    backup.add_argument("--topics", metavar="LIST", help="comma-separated registry topics (default: all)")
    backup.add_argument("--bootstrap", metavar="ADDR", help="Kafka bootstrap servers "
                        "(default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    _data_dir_option(backup)
    backup.set_defaults(handler=cmd_backup)
    restore = sub.add_parser("restore", help="verify a backup set and restore it (services stopped)")
    restore.add_argument("folder", help="the backup set's folder")
    restore.add_argument("--only", choices=["databases", "topics"], help="restore only the databases or the topics")
    restore.add_argument("--services", type=parse_services, metavar="LIST",
                         help="comma-separated services whose databases to restore (default: all in the set)")
    restore.add_argument("--topics", metavar="LIST", help="comma-separated topics to restore (default: all in the set)")
    restore.add_argument("--replace-databases", action="store_true",
                         help="restore over non-empty databases (pg_restore --clean; SQLite overwritten)")
    restore.add_argument("--into-non-empty-topics", action="store_true",
                         help="append to topics that already hold records instead of refusing")
    restore.add_argument("--no-group-offsets", action="store_true",
                         help="leave consumer group offsets alone (consumers then start from the earliest record)")
    restore.add_argument("--verify-only", action="store_true", help="check the checksums and stop")
    restore.add_argument("--bootstrap", metavar="ADDR", help="Kafka bootstrap servers "
                         "(default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    _data_dir_option(restore)
    restore.set_defaults(handler=cmd_restore)


# Tools that live in a service are run as that service's module: the runtime imports no service.
DELEGATED = {
    "decode": (["ingest.tools.codec_cli", "decode"], "decode a meter frame (hex) and print it as JSON"),
    "encode": (["ingest.tools.codec_cli", "encode"], "build a downlink frame (valve, relay, read, time sync)"),
    "simulate": (["ingest.simulator"], "run virtual meters behind virtual DTUs against the gateway"),
    "identity": (["identity.main"], "users, clients and signing keys: create-user, create-client, rotate-keys, list"),
}


def cmd_delegated(args: argparse.Namespace) -> int:
    """Run a service's tool module with the remaining arguments; its exit code is ours."""
    module = DELEGATED[args.command][0]
    return subprocess.run([sys.executable, "-m", *module, *args.rest], check=False).returncode


def _add_delegated(sub: Any) -> None:
    for name, (_module, text) in DELEGATED.items():
        tool = sub.add_parser(name, help=text, add_help=False)
        tool.add_argument("rest", nargs=argparse.REMAINDER)
        tool.set_defaults(handler=cmd_delegated)


def build_parser() -> argparse.ArgumentParser:
    """The `amiflow` argument parser with its four commands."""
    parser = argparse.ArgumentParser(prog="amiflow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_up(sub)
    _add_chores(sub)
    _add_backup_restore(sub)
    _add_delegated(sub)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: hand back the code instead of exiting
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `amiflow` console script; returns the exit code."""
    given = list(sys.argv[1:] if argv is None else argv)
    if given and given[0] in DELEGATED:  # the tool parses its own arguments, --help included
        return cmd_delegated(argparse.Namespace(command=given[0], rest=given[1:]))
    args = _parse(argv)
    if isinstance(args, int):
        return args
    logging.basicConfig(level=logging.INFO, format="amiflow: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, ImportError, subprocess.CalledProcessError) as exc:
        # Expected failures (port taken, broker down, mvn missing) deserve one line, not a traceback.
        print(f"amiflow {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
