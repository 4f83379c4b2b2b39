"""A throwaway PostgreSQL server in a temporary folder, for the test suite and `amiflow pg`.

Uses initdb / pg_ctl from Debian's `postgresql` package. PostgreSQL refuses to run as root, so when
the caller is root the server runs as the `postgres` system user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from amiflow_runtime.localkafka import free_port


def pg_bindir() -> Path:
    """The folder with initdb and pg_ctl: PG_BINDIR, else the newest /usr/lib/postgresql/*/bin."""
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return Path(configured)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return Path(candidates[-1])
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (or set PG_BINDIR)")


@dataclass
class LocalPostgres:
    """initdb + pg_ctl start on 127.0.0.1 with trust auth; `stop` removes nothing, `destroy` all."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="amiflow-pg-")))
    port: int = field(default_factory=free_port)
    user: str = "amiflow"
    # False for tests (their data is thrown away); True where durability is part of what is measured
    # (`make bench`): every commit waits for its WAL flush, as on a production server.
    durable: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """SQLAlchemy URL of one database on this server."""
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> tuple[list[str], int | None, int | None]:
        if os.geteuid() != 0:
            return [], None, None
        account = pwd.getpwnam("postgres")
        return ["runuser", "-u", "postgres", "--"], account.pw_uid, account.pw_gid

    def _run(self, *args: str) -> None:
        prefix, _, _ = self._run_as()
        done = subprocess.run([*prefix, *args], capture_output=True, check=False, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: "
                               f"{(done.stdout + done.stderr).decode(errors='replace')[-2000:]}")

    def start(self) -> str:
        """Create the cluster and start the server; returns the URL of the `postgres` database."""
        _, uid, gid = self._run_as()
        self.root.mkdir(parents=True, exist_ok=True)
        if uid is not None and gid is not None:
            os.chown(self.root, uid, gid)
        bindir = pg_bindir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                      "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        # fsync and synchronous_commit off: a test server's data is thrown away, durability buys nothing.
        durability = "" if self.durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} {durability}"
                   "-c max_connections=200 -c shared_buffers=128MB")
        self._run(str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        return self.url()

    def stop(self) -> None:
        """Fast shutdown; safe to call twice."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(str(pg_bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
