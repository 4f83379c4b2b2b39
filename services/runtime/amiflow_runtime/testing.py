"""pytest fixtures for real infrastructure: a Kafka broker and a PostgreSQL server started here.

Registered by the root conftest.py. KAFKA_BOOTSTRAP_SERVERS and AMIFLOW_TEST_POSTGRES_URL point the
suite at servers that already run instead; nothing is skipped when they are absent: the fixtures
start their own (a missing java, mvn or initdb is an error with the reason, not a skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from amiflow_runtime.auth import public_jwk, sign
from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.localkafka import LocalKafka, free_port
from amiflow_runtime.localpg import LocalPostgres


@contextlib.contextmanager
def started_kafka(home: Path, log_level: str = "INFO") -> Iterator[str]:
    """A broker of its own, in ``home``, with the registry's topics; stopped on leaving. Yields its address."""
    broker = LocalKafka(home=home, port=free_port(), log_level=log_level)
    bootstrap = broker.start()
    try:
        yield with_topics(bootstrap)
    finally:
        broker.stop()


def with_topics(bootstrap: str) -> str:
    """Create the registry's topics on a broker (those it has already are left as they are)."""
    from amiflow_schemas.topics import TOPICS

    asyncio.run(ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap), TOPICS))
    return bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker with the registry's topics; started for the session unless one is given."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield with_topics(external)
        return
    with started_kafka(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """SQLAlchemy URL of the `postgres` database on a real server started for the session."""
    external = os.environ.get("AMIFLOW_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    server = LocalPostgres()
    try:
        yield server.start()
    finally:
        server.destroy()


async def create_database(admin_url: str, prefix: str = "t") -> str:
    """A fresh, empty database on the server of `admin_url`; returns its SQLAlchemy URL."""
    url = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                 database=url.database)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def postgres_database(postgres_admin_url: str) -> Callable[[str], Awaitable[str]]:
    """Factory: `await postgres_database("billing")` gives the URL of a new database."""

    async def make(prefix: str = "t") -> str:
        return await create_database(postgres_admin_url, prefix)

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each backend the services support: the embedded SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    else:
        admin_url = request.getfixturevalue("postgres_admin_url")
        yield await create_database(admin_url)


def unique(prefix: str) -> str:
    """An id no other test uses, so tests can share one broker and its topics."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- Bearer tokens for tests ----------------------------------------------------------------------
# The suite signs its own tokens with a key made for the session; every service (in-process or a
# subprocess) checks them against its public half through AMIFLOW_AUTH_JWKS_FILE, set here before
# anything starts. The private key never leaves this process's memory.

_TEST_KEY: dict[str, Any] = {}


def suite_signing_key() -> tuple[Any, str]:
    """The session's private signing key and its key id; publishes the public half on first use."""
    if not _TEST_KEY:
        from cryptography.hazmat.primitives.asymmetric import ec

        key, kid = ec.generate_private_key(ec.SECP256R1()), f"test-{uuid.uuid4().hex[:8]}"
        folder = Path(tempfile.mkdtemp(prefix="amiflow-test-keys-"))
        jwks = folder / "jwks.json"
        jwks.write_text(json.dumps({"keys": [public_jwk(key, kid)]}))
        os.environ["AMIFLOW_AUTH_JWKS_FILE"] = str(jwks)
        _TEST_KEY.update(key=key, kid=kid, jwks=jwks)
    return _TEST_KEY["key"], _TEST_KEY["kid"]


def token_for(tenant: str = "demo", roles: Sequence[str] = ("platform_admin",), *, subject: str | None = None,
              sites: Sequence[str] | None = None, duties: Sequence[str] | None = None,
              account_id: str | None = None, scope: str | None = None, expires_in_s: float = 3600.0,
              issuer: str | None = None, audience: str | None = None, **extra: Any) -> str:
    """A signed access token as the identity service would issue it (claims in amiflow_runtime.auth)."""
    key, kid = suite_signing_key()
    settings = ServiceSettings()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer or settings.auth_issuer, "aud": audience or settings.auth_audience,
        "sub": subject or f"test-{'-'.join(roles)}", "tenant": tenant, "roles": list(roles),
        "iat": now, "nbf": now, "exp": now + int(expires_in_s), "jti": uuid.uuid4().hex, **extra,
    }
    for name, value in (("sites", sites), ("duties", duties), ("account_id", account_id), ("scope", scope)):
        if value is not None:
            claims[name] = list(value) if isinstance(value, (list, tuple)) else value
    return sign(claims, key, kid)


def auth_headers(tenant: str = "demo", roles: Sequence[str] = ("platform_admin",), **kw: Any) -> dict[str, str]:
    """`Authorization` header for a caller of `tenant` (a platform admin unless roles say otherwise).

    A platform admin's token also names the tenant in X-Tenant-Id, as an operator of the platform
    acting for that tenant does, so one token works for every tenant a test makes up.
    """
    headers = {"Authorization": f"Bearer {token_for(tenant, roles, **kw)}"}
    if "platform_admin" in roles:
        headers["X-Tenant-Id"] = tenant
    return headers


@pytest.fixture(scope="session", autouse=True)
def _test_token_keys() -> None:
    """Publish the suite's token keys before any service or subprocess starts; the fleet simulator
    (registration, demo customers) calls the APIs with AMIFLOW_API_TOKEN as `amiflow up` gives it one."""
    suite_signing_key()
    # In-process apps trust the suite's key file only; a platform under test names its identity's JWKS URL.
    os.environ.setdefault("AMIFLOW_AUTH_JWKS_URL", "")
    os.environ.setdefault("AMIFLOW_API_TOKEN", token_for("demo", ("platform_admin",), subject="test-simulator",
                                                         expires_in_s=8 * 3600))


def asgi_client(app: Any, base_url: str, tenant: str = "demo", **kw: Any) -> Any:
    """An httpx client calling `app` in-process as a platform admin of `tenant` (see auth_headers)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url,
                             headers=auth_headers(tenant), **kw)


# --- A platform started by `amiflow up` (end-to-end tests, `make bench`) --------------------------


def wait_until_ready(process: Any, urls: Sequence[str], timeout_s: float, describe: Callable[[], str]) -> None:
    """Poll every URL until each answers 200; fail at once if `process` exits, or after `timeout_s`.
    `describe` says where to look (the log's tail, its path) in the error."""
    deadline = time.monotonic() + timeout_s
    pending = set(urls)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"amiflow up exited with {process.returncode}: {describe()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout_s:.0f} s: {sorted(pending)}: {describe()}")
        for url in list(pending):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    pending.discard(url)
            except httpx.HTTPError:
                pass
        time.sleep(0.5)


def stop_platform(process: Any, timeout_s: float = 60.0) -> None:
    """What Ctrl-C does (the CLI stops every child); the whole process group is killed if that hangs, and any
    child still alive after that (each runs in its own session, out of the group's reach) is killed too — a
    benchmark run once left eight service processes behind, busy, skewing every figure after it."""
    import signal
    import subprocess

    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()
