"""A single-node Apache Kafka broker in KRaft mode, run as a plain `java` process from Maven jars.

Used by `amiflow up`, `make run` and the test fixtures when KAFKA_BOOTSTRAP_SERVERS is not set.
The jars are resolved from Maven Central by tools/kafka/pom.xml into .cache/kafka/lib (git-ignored);
storage is formatted on first start and kept in the broker's home folder between runs.

Plaintext by default. The secured mode (`BrokerSecurity`, `start --secured`) runs the client listener
as production does: SASL_SSL with SCRAM-SHA-512, a certificate from a throwaway CA, ACLs enforced.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from amiflow_runtime.paths import project_root
from amiflow_runtime.tls import ThrowawayAuthority, write_private

log = logging.getLogger("amiflow.localkafka")

POM = "tools/kafka/pom.xml"
DEFAULT_LIB_DIR = ".cache/kafka/lib"
DEFAULT_HOME = "data/kafka"
READY_TIMEOUT_S = 120.0  # a cold JVM on 2 cores takes 10-40 s; leave room for a loaded CI machine


def lib_dir() -> Path:
    """Where the broker's jars are cached."""
    return project_root() / DEFAULT_LIB_DIR


def fetch_jars(target: Path | None = None) -> Path:
    """Resolve the broker's runtime classpath from Maven Central once; later calls reuse the cache."""
    target = target or lib_dir()
    if target.is_dir() and any(target.glob("kafka_2.13-*.jar")):
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka broker's jars; install maven")
    log.info("fetching the Apache Kafka broker's jars from Maven Central into %s", target)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(project_root() / POM), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: a half-finished download never looks like a cache
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _cluster_id() -> str:
    # KRaft wants a 22-character URL-safe base64 UUID. One in 64 starts with "-", which the storage
    # tool's argument parser takes for an option: draw again (Kafka's own random_uuid does the same).
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def _server_properties(data_dir: Path, port: int, controller_port: int, listener: str = "PLAINTEXT") -> str:
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={listener}://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map={listener}:{listener},CONTROLLER:PLAINTEXT
inter.broker.listener.name={listener}
log.dirs={data_dir}
# Topics come from the registry in schemas/, never from a typo in a producer.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Two cores: a small thread budget keeps the broker from starving the services beside it.
num.network.threads=2
num.io.threads=2
background.threads=2
log.cleaner.threads=1
num.recovery.threads.per.data.dir=1
log.retention.check.interval.ms=300000
"""


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.kafkaorg.name = org.apache.kafka
logger.kafkaorg.level = {level}
"""


SCRAM = "SCRAM-SHA-512"
BROKER_HOSTS = ("127.0.0.1", "localhost")  # what the broker certificate is valid for


@dataclass(frozen=True)
class BrokerSecurity:
    """The secured mode: clients must speak TLS and authenticate with SCRAM-SHA-512; ACLs decide the rest.

    `admin` is a super user (it also carries the broker's own inter-broker connections); `users` are
    SCRAM users with no rights at all until ACLs grant some (allow.everyone.if.no.acl.found=false).
    Users are created when storage is formatted, so they are fixed for the life of a broker home.
    `client_auth="required"` also demands a client certificate signed by the CA (mutual TLS).
    """

    admin_password: str = field(repr=False)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    admin: str = "admin"
    client_auth: str = "none"

    def __post_init__(self) -> None:
        if self.client_auth not in ("none", "requested", "required"):
            raise ValueError(f"client_auth must be none, requested or required, not {self.client_auth!r}")
        for name, password in self.credentials().items():
            # Both end up inside a JAAS string and the storage tool's [name=...,password=...] syntax.
            if not name or not password or any(c in name + password for c in '"\\,=[] \n'):
                raise ValueError(f"user {name!r}: names and passwords must be non-empty, without quotes, "
                                 "backslashes, commas, equals signs, brackets or blanks")

    def credentials(self) -> dict[str, str]:
        """Every SCRAM user and its password, the admin included."""
        return {self.admin: self.admin_password, **self.users}


def _secured_properties(security: BrokerSecurity, keystore: Path, truststore: Path) -> str:
    # The controller listener stays PLAINTEXT on 127.0.0.1: its connections (this node talking to
    # itself) arrive as User:ANONYMOUS, which must therefore be a super user for the quorum to work.
    # A SASL_SSL listener ignores a bare ssl.client.auth (KIP-684): mutual TLS needs the listener prefix.
    return f"""\
sasl.enabled.mechanisms={SCRAM}
sasl.mechanism.inter.broker.protocol={SCRAM}
listener.name.sasl_ssl.{SCRAM.lower()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
required username="{security.admin}" password="{security.admin_password}";
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={truststore}
listener.name.sasl_ssl.ssl.client.auth={security.client_auth}
ssl.endpoint.identification.algorithm=https
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{security.admin};User:ANONYMOUS
"""


@dataclass
class LocalKafka:
    """One broker process; `start` formats storage on first use, `stop` shuts it down cleanly."""

    home: Path
    port: int = 9092
    controller_port: int = 0
    log_level: str = "INFO"
    security: BrokerSecurity | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def ca_file(self) -> Path:
        """The throwaway CA's certificate: what clients of the secured mode trust (KAFKA_SSL_CAFILE)."""
        return self.tls_dir / "ca.pem"

    def _prepare(self) -> tuple[Path, Path]:
        self.home.mkdir(parents=True, exist_ok=True)
        data_dir = self.home / "data"
        props = self.home / "server.properties"
        if not self.controller_port:
            self.controller_port = free_port()
        formatted = (data_dir / "meta.properties").exists()
        if self.security is None:
            props.write_text(_server_properties(data_dir, self.port, self.controller_port))
        else:
            if formatted and not self.ca_file.exists():
                raise RuntimeError(f"{self.home} holds a plaintext broker (no SCRAM users): "
                                   "give the secured mode a fresh --home")
            keystore = self._prepare_tls()
            write_private(props, (_server_properties(data_dir, self.port, self.controller_port, "SASL_SSL")
                                  + _secured_properties(self.security, keystore, self.ca_file)).encode())
        log4j = self.home / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log_file=self.log_file, level=self.log_level))
        if not formatted:
            self._format(props)
        return props, log4j

    def _prepare_tls(self) -> Path:
        """The CA and the broker's key store (key + chain in one PEM file), made once per home."""
        keystore = self.tls_dir / "broker.pem"
        if keystore.exists():
            return keystore
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        authority = ThrowawayAuthority.create()
        authority.save(self.ca_file, self.tls_dir / "ca-key.pem")
        broker = authority.issue("amiflow local broker", BROKER_HOSTS)
        write_private(keystore, broker.key_pem + broker.certificate_pem + authority.certificate_pem)
        return keystore

    def issue_client_certificate(self, name: str, key_password: str | None = None) -> tuple[Path, Path]:
        """A client certificate signed by this broker's CA, for mutual TLS; returns (certificate, key) files."""
        authority = ThrowawayAuthority.load(self.ca_file, self.tls_dir / "ca-key.pem")
        issued = authority.issue(name, key_password=key_password)
        certificate, key = self.tls_dir / f"{name}.pem", self.tls_dir / f"{name}-key.pem"
        certificate.write_bytes(issued.certificate_pem)
        write_private(key, issued.key_pem)
        return certificate, key

    def client_environment(self, user: str) -> dict[str, str]:
        """The KAFKA_* variables a service needs to connect to the secured mode as `user`."""
        if self.security is None:
            return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": SCRAM, "KAFKA_SASL_USERNAME": user,
                "KAFKA_SASL_PASSWORD": self.security.credentials()[user], "KAFKA_SSL_CAFILE": str(self.ca_file)}

    def _java_cmd(self, main: str, *args: str, short_lived: bool = False,
                  log4j: Path | None = None) -> list[str]:
        cmd = ["java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]
        if short_lived:
            cmd.append("-XX:TieredStopAtLevel=1")  # C1 only: the format tool runs for a second
        if log4j is not None:
            cmd.append(f"-Dlog4j2.configurationFile={log4j}")
        return [*cmd, "-cp", f"{fetch_jars()}/*", main, *args]

    def _format(self, props: Path) -> None:
        scram: list[str] = []
        if self.security is not None:  # KRaft keeps SCRAM users in the metadata log: they are made here
            for name, password in self.security.credentials().items():
                scram += ["--add-scram", f"{SCRAM}=[name={name},password={password}]"]
        cmd = self._java_cmd("kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id(),
                             "-c", str(props), *scram, short_lived=True)
        done = subprocess.run(cmd, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def _spawn(self, props: Path, log4j: Path) -> subprocess.Popen[bytes]:
        with open(self.home / "broker.stdout", "ab") as out:
            return subprocess.Popen(self._java_cmd("kafka.Kafka", str(props), log4j=log4j),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Start the broker and wait until it accepts connections; returns the bootstrap address."""
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken: is a broker already running? "
                               "set KAFKA_BOOTSTRAP_SERVERS to use it")
        props, log4j = self._prepare()
        self.process = self._spawn(props, log4j)
        self.pid_file.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with {self.process.returncode}; "
                                   f"see {self.log_file} and {self.home / 'broker.stdout'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the Kafka broker did not listen on {self.port} within {timeout_s:.0f} s")
            time.sleep(0.2)
        log.info("Kafka broker listening on %s (pid %s)", self.bootstrap_servers, self.process.pid)
        return self.bootstrap_servers

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, wait for a controlled shutdown, SIGKILL only if it hangs."""
        pid = self.process.pid if self.process else _read_pid(self.pid_file)
        if pid is None:
            return
        _terminate(pid, timeout_s, self.process)
        self.pid_file.unlink(missing_ok=True)
        self.process = None


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _terminate(pid: int, timeout_s: float, proc: subprocess.Popen[bytes] | None) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while _alive(pid, proc):
        if time.monotonic() > deadline:
            log.warning("broker pid %s ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    if proc is not None:
        proc.wait()


def _kept_security(home: Path, users: list[str]) -> BrokerSecurity:
    """The secured mode's users, passwords drawn on the first start and kept in <home>/tls/<user>.env."""
    formatted = (home / "data" / "meta.properties").exists()

    def password(user: str) -> str:
        kept = _env_file(home, user)
        if kept.exists():
            return dict(line.split("=", 1) for line in kept.read_text().splitlines())["KAFKA_SASL_PASSWORD"]
        if formatted:
            raise RuntimeError(f"user {user!r} was not created when {home} was formatted (SCRAM users are "
                               "made then): use a fresh --home")
        return secrets.token_urlsafe(24)

    return BrokerSecurity(admin_password=password("admin"), users={user: password(user) for user in users})


def _env_file(home: Path, user: str) -> Path:
    return home / "tls" / f"{user}.env"


def _keep_credentials(broker: LocalKafka) -> None:
    # Written before the first start formats storage, so a failed start never loses a made user's password.
    assert broker.security is not None
    broker.tls_dir.mkdir(parents=True, exist_ok=True)
    for user in broker.security.credentials():
        lines = [f"{name}={value}" for name, value in broker.client_environment(user).items()]
        write_private(_env_file(broker.home, user), ("\n".join(lines) + "\n").encode())
    print(f"secured mode (SASL_SSL, SCRAM-SHA-512, ACLs): each user's KAFKA_* settings, password included, "
          f"are in {broker.tls_dir}/<user>.env for {', '.join(broker.security.credentials())}")


def main(argv: list[str] | None = None) -> int:
    """`python -m amiflow_runtime.localkafka fetch|start|stop|status` for the Makefile."""
    parser = argparse.ArgumentParser(prog="amiflow-kafka", description=__doc__)
    parser.add_argument("action", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--home", default=str(project_root() / DEFAULT_HOME))
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--secured", action="store_true",
                        help="SASL_SSL with SCRAM-SHA-512 and ACLs enforced; needs a fresh --home on first start")
    parser.add_argument("--user", action="append", default=[], metavar="NAME",
                        help="with --secured: a SCRAM user without rights until ACLs grant some (repeatable; "
                             "made when storage is formatted, i.e. on the first start)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    home = Path(args.home)
    security = _kept_security(home, args.user) if args.secured and args.action == "start" else None
    broker = LocalKafka(home=home, port=args.port, security=security)
    if args.action == "fetch":
        print(fetch_jars())
    elif args.action == "start":
        if security is not None:
            _keep_credentials(broker)
        print(broker.start())
        broker.process = None  # leave it running, detached, for `stop`
    elif args.action == "stop":
        broker.stop()
    else:
        pid = _read_pid(broker.pid_file)
        running = pid is not None and _alive(pid, None)
        print(f"running pid {pid} on {broker.bootstrap_servers}" if running else "not running")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
