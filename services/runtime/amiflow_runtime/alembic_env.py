"""The body of every service's Alembic env.py: async engine, advisory lock on PostgreSQL."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from amiflow_runtime.db import make_engine


def run(target_metadata: MetaData | None, service: str) -> None:
    """Run the pending migrations of `service` online (offline SQL generation is not supported)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set in the Alembic config")
    asyncio.run(_run_async(url, target_metadata, service))


async def _run_async(url: str, target_metadata: MetaData | None, service: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, target_metadata, service)
    finally:
        await engine.dispose()


def _migrate(connection: Connection, target_metadata: MetaData | None, service: str) -> None:
    postgres = connection.dialect.name == "postgresql"
    lock_key = zlib.crc32(f"amiflow-migrate-{service}".encode())
    if postgres:
        # API and worker replicas start together; one migrates, the rest wait and find nothing to do.
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key})
        connection.commit()
    try:
        options: dict[str, Any] = {"render_as_batch": connection.dialect.name == "sqlite"}
        context.configure(connection=connection, target_metadata=target_metadata, **options)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
            connection.commit()
