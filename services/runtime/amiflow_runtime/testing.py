"""pytest fixtures for real infrastructure: a Kafka broker and a PostgreSQL server started here.

Registered by the root conftest.py. KAFKA_BOOTSTRAP_SERVERS and AMIFLOW_TEST_POSTGRES_URL point the
suite at servers that already run instead; nothing is skipped when they are absent: the fixtures
start their own (a missing java, mvn or initdb is an error with the reason, not a skip).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from amiflow_runtime.config import ServiceSettings
from amiflow_runtime.kafka import ensure_topics
from amiflow_runtime.localkafka import LocalKafka, free_port
from amiflow_runtime.localpg import LocalPostgres


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker with the registry's topics; started for the session unless one is given."""
    from amiflow_schemas.topics import TOPICS

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if external:
        bootstrap = external
    else:
        broker = LocalKafka(home=tmp_path_factory.mktemp("kafka"), port=free_port())
        bootstrap = broker.start()
    try:
        settings = ServiceSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap)
        asyncio.run(ensure_topics(settings, TOPICS))
        yield bootstrap
    finally:
        if broker is not None:
            broker.stop()


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
